"""A user's DQN as a TOML file: every AgentConfig field, plus a name and env-level settings.

    name = "my-dqn"                 # optional; the run's name (default: the file's stem)
    env_id = "Acrobot-v1"
    total_env_steps = 100_000
    replay_capacity = 50_000        # "none": learn from the latest transition only
    target_network = "hard"
    target_sync_period = 500
    hidden_sizes = [128, 128]

    [env]                           # optional settings of the environment
    success_threshold = -100.0      # a late return that counts as "learned"
    max_abs_reward = 1.0            # the bound behind the soft-divergence bound

Read with the standard library's tomllib. Optional fields take the string "none" (TOML has no
null). Every problem is one line naming the file, the key and the value.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.config import AgentConfig, ConfigError

OPTIONAL_FIELDS = {f.name for f in dataclasses.fields(AgentConfig) if "None" in str(f.type)}
ENV_SETTINGS = ("success_threshold", "max_abs_reward")


@dataclass(frozen=True)
class EnvSettings:
    """What a config file may say about its env where gymnasium's registration does not."""

    success_threshold: float | None = None
    max_abs_reward: float | None = None


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    name: str
    config: AgentConfig
    env: EnvSettings


def _problem(path: Path, key: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"{path}: {key} = {value!r} is invalid: {why}")


def load_config_file(path: str | Path) -> ConfigFile:
    """Parse and validate a config file; a ConfigError (one line) on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.__class__.__name__}: {exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    name = data.pop("name", path.stem)
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise _problem(path, "name", name, "must be a non-empty string without '/'")
    env = _env_settings(path, data.pop("env", {}))
    known = {f.name for f in dataclasses.fields(AgentConfig)}
    fields: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise _problem(
                path, key, value, f"not a configuration field (known: name, [env], {', '.join(sorted(known))})"
            )
        if isinstance(value, dict):
            raise _problem(path, key, value, "must be a value, not a table")
        if value == "none" and key in OPTIONAL_FIELDS:
            value = None
        fields[key] = value
    try:
        config = AgentConfig(**fields)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except TypeError as exc:  # a field given a value of the wrong kind that validation did not reach
        raise ConfigError(f"{path}: {exc}") from None
    return ConfigFile(path, name.strip(), config, env)


def _env_settings(path: Path, table: Any) -> EnvSettings:
    if not isinstance(table, dict):
        raise _problem(path, "env", table, "must be a table: [env]")
    values: dict[str, float] = {}
    for key, value in table.items():
        if key not in ENV_SETTINGS:
            raise _problem(path, f"env.{key}", value, f"not an env setting (known: {', '.join(ENV_SETTINGS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _problem(path, f"env.{key}", value, "must be a finite number")
        if key == "max_abs_reward" and value <= 0:
            raise _problem(path, f"env.{key}", value, "must be > 0")
        values[key] = float(value)
    return EnvSettings(**values)


def _toml_value(value: Any) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)  # shortest round-trip form: 0.001, 1e-05, 10.0 are all TOML floats
    return json.dumps(value) if isinstance(value, str) else str(value)


def config_file_text(name: str, config: AgentConfig, env: EnvSettings, header: str = "") -> str:
    """A config file that load_config_file reads back to the same name, config and [env]. Written
    by hand because the file is one flat table of scalars and lists (the standard library reads
    TOML but does not write it); every field is written, so the file says exactly what trains."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines.append(f"name = {json.dumps(name)}")
    lines += [f"{field} = {_toml_value(value)}" for field, value in config.to_dict().items()]
    given = {k: v for k, v in dataclasses.asdict(env).items() if v is not None}
    if given:
        lines += ["", "[env]", *(f"{key} = {_toml_value(value)}" for key, value in given.items())]
    return "\n".join(lines) + "\n"
