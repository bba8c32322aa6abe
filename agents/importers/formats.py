"""The DQN you already have, as a config of ours: Stable-Baselines3 keyword sets, rl-baselines3-zoo
`dqn.yml` entries and CleanRL `dqn.py` arguments, with their exact semantics.

Each importer fills the source's own defaults, maps every key to our fields (`Imported.notes`
says where each value came from, for the TOML's comments) and refuses, in one line naming the
key, anything our engine cannot run exactly (another policy, optimizer or replay buffer,
vectorised or wrapped envs, schedules, soft target updates on an interval). What differs
only up to float rounding or at one step is listed in `Imported.differences`.
"""

from __future__ import annotations

import ast
import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.config import BUG_FIELDS, AgentConfig, ConfigError

SOURCES = ("sb3", "rl-zoo", "cleanrl")
# stable_baselines3.DQN.__init__'s defaults, read off its source (2.x; checked against 2.9.2).
SB3_VERSION = "2.x (checked against 2.9.2)"
SB3_DEFAULTS: dict[str, Any] = {
    "policy": "MlpPolicy",
    "learning_rate": 1e-4,
    "buffer_size": 1_000_000,
    "learning_starts": 100,
    "batch_size": 32,
    "tau": 1.0,
    "gamma": 0.99,
    "train_freq": 4,
    "gradient_steps": 1,
    "replay_buffer_class": None,
    "replay_buffer_kwargs": None,
    "optimize_memory_usage": False,
    "n_steps": 1,
    "target_update_interval": 10_000,
    "exploration_fraction": 0.1,
    "exploration_initial_eps": 1.0,
    "exploration_final_eps": 0.05,
    "max_grad_norm": 10.0,
    "policy_kwargs": None,
}
# Keys that do not change what trains (logging, devices, seeding: we seed per run ourselves).
SB3_INERT = {"stats_window_size", "tensorboard_log", "verbose", "seed", "device", "_init_setup_model"}
# rl-zoo keys beyond DQN's own: the run length, env count and wrappers.
ZOO_ONLY = {"n_timesteps", "n_envs", "env_wrapper", "frame_stack", "normalize", "callback", "vec_env_wrapper"}
# cleanrl/dqn.py's Args defaults (the Algorithm section; the rest is logging and devices).
CLEANRL_DEFAULTS: dict[str, Any] = {
    "env_id": "CartPole-v1",
    "total_timesteps": 500_000,
    "learning_rate": 2.5e-4,
    "num_envs": 1,
    "buffer_size": 10_000,
    "gamma": 0.99,
    "tau": 1.0,
    "target_network_frequency": 500,
    "batch_size": 128,
    "start_e": 1.0,
    "end_e": 0.05,
    "exploration_fraction": 0.5,
    "learning_starts": 10_000,
    "train_frequency": 10,
}
CLEANRL_INERT = {
    "exp_name", "seed", "torch_deterministic", "cuda", "track", "wandb_project_name", "wandb_entity",
    "capture_video", "save_model", "upload_model", "hf_entity",
}  # fmt: skip
CLEANRL_HIDDEN = (120, 84)  # QNetwork: Linear(obs, 120), ReLU, Linear(120, 84), ReLU, Linear(84, actions)


class SourceError(ValueError):
    """A source key our engine cannot run exactly; the message names the key and its value."""


def _refuse(key: str, value: Any, why: str) -> SourceError:
    return SourceError(f"{key}={value!r} cannot be imported: {why}")


@dataclass(frozen=True)
class Imported:
    """A source config as ours: the config, where each field's value came from, and what still
    differs from the source's own loop."""

    name: str
    source: str
    config: AgentConfig
    notes: dict[str, str] = field(default_factory=dict)
    differences: tuple[str, ...] = ()


# --- reading a source file ------------------------------------------------------------------


def read_mapping(text: str, what: str) -> dict:
    """A JSON object or a Python dict literal (the arguments of `DQN(...)` as written in code)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            raise SourceError(f"{what}: neither a JSON object nor a Python dict literal") from None
    if not isinstance(data, dict):
        raise SourceError(f"{what}: must be a mapping of keyword -> value, not {type(data).__name__}")
    return data


def read_zoo_entry(text: str, env_id: str | None, what: str) -> tuple[str, dict]:
    """One env's entry of an rl-zoo dqn.yml (the file may hold many; --env picks one)."""
    import yaml  # the zoo's own format (its !!float tags included)

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SourceError(f"{what}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not data:
        raise SourceError(f"{what}: not a dqn.yml mapping of env id -> hyperparameters")
    if env_id is None:
        if len(data) != 1:
            raise SourceError(f"{what}: holds {len(data)} envs; choose one with --env (e.g. {next(iter(data))})")
        env_id = next(iter(data))
    if env_id not in data:
        raise SourceError(f"--env={env_id!r}: not an entry of {what} (it has {', '.join(list(data)[:6])}, ...)")
    entry = data[env_id]
    if not isinstance(entry, dict):
        raise SourceError(f"{what}: the entry {env_id} is not a mapping")
    return env_id, dict(entry)


def read_cleanrl_args(text: str, what: str) -> dict:
    """CleanRL overrides: a mapping (JSON or dict literal) or its command-line flags
    (`--learning-rate 1e-3 --total-timesteps 100000`); dashes read as underscores."""
    stripped = text.strip()
    if stripped.startswith("{"):
        raw = read_mapping(stripped, what)
    else:
        raw, words = {}, shlex.split(stripped, comments=True)
        i = 0
        while i < len(words):
            flag = words[i]
            if not flag.startswith("--"):
                raise SourceError(f"{what}: {flag!r} is not a --flag")
            key, eq, value = flag[2:].partition("=")
            if not eq:
                if i + 1 < len(words) and not words[i + 1].startswith("--"):
                    value, i = words[i + 1], i + 1
                else:
                    value = "True"  # a bare toggle
            raw[key] = _scalar(value)
            i += 1
    return {key.replace("-", "_"): value for key, value in raw.items()}


def _scalar(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return {"true": True, "false": False}.get(text.lower(), text)


# --- the shared checks ----------------------------------------------------------------------


def _number(key: str, value: Any, *, integer: bool = False) -> float | int:
    if isinstance(value, str):  # YAML without a tag reads 5e4 as a string; a schedule is a string too
        try:
            value = float(value)
        except ValueError:
            raise _refuse(key, value, "not a number (schedules such as lin_... are not supported)") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _refuse(key, value, "must be a finite number")
    if integer:
        if value != int(value):
            raise _refuse(key, value, "must be a whole number")
        return int(value)
    return float(value)


def _policy_kwargs(value: Any) -> dict:
    """SB3's policy_kwargs: a dict, or the zoo's string "dict(net_arch=[256, 256])"."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, str):
        raise _refuse("policy_kwargs", value, "must be a dict")
    try:
        call = ast.parse(value.strip(), mode="eval").body
    except SyntaxError:
        raise _refuse("policy_kwargs", value, "not a dict(...) expression") from None
    if isinstance(call, ast.Dict):
        return ast.literal_eval(call)
    is_dict_call = isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "dict"
    if not is_dict_call or call.args:
        raise _refuse("policy_kwargs", value, "not a dict(...) expression")
    out = {}
    for keyword in call.keywords:
        if keyword.arg == "activation_fn":  # nn.ReLU, th.nn.ReLU: the class name is what matters
            node = keyword.value
            out["activation_fn"] = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "?")
            continue
        try:
            out[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            raise _refuse(f"policy_kwargs.{keyword.arg}", ast.unparse(keyword.value), "not a literal") from None
    return out


def _hidden_sizes(kwargs: dict) -> tuple[int, ...] | None:
    """SB3's net_arch (MlpPolicy's Q-network layers), after refusing what changes the network."""
    for key, value in kwargs.items():
        if key == "activation_fn":
            name = value if isinstance(value, str) else getattr(value, "__name__", repr(value))
            if name != "ReLU":
                raise _refuse("policy_kwargs.activation_fn", name, "our Q-network uses ReLU only")
        elif key == "optimizer_class":
            name = value if isinstance(value, str) else getattr(value, "__name__", repr(value))
            if name.rsplit(".", 1)[-1] != "Adam":
                raise _refuse("policy_kwargs.optimizer_class", name, "our engine runs Adam only")
        elif key == "optimizer_kwargs":
            if value:
                raise _refuse("policy_kwargs.optimizer_kwargs", value, "Adam runs with torch's defaults only")
        elif key == "normalize_images":
            pass  # images only; our envs have flat observations
        elif key != "net_arch":
            raise _refuse(f"policy_kwargs.{key}", value, "not supported (MlpPolicy with net_arch only)")
    arch = kwargs.get("net_arch")
    if arch is None:
        return None
    if not isinstance(arch, list) or not arch or not all(isinstance(w, int) and w > 0 for w in arch):
        raise _refuse("policy_kwargs.net_arch", arch, "must be a list of layer widths")
    return tuple(arch)


def _shared_fields(args: dict) -> dict:
    """The fields SB3 and CleanRL name alike: gamma, learning_rate, batch_size, buffer_size."""
    return {
        "gamma": _number("gamma", args["gamma"]),
        "learning_rate": _number("learning_rate", args["learning_rate"]),
        "batch_size": _number("batch_size", args["batch_size"], integer=True),
        "replay_capacity": _number("buffer_size", args["buffer_size"], integer=True),
    }


def _target_rule(tau_value, tau_origin: str, when: str) -> tuple[dict, dict]:
    """The target fields and their notes for a source's tau: 1 is a hard copy, a tau in (0, 1)
    a Polyak average, each at the source's sync times (`when`, the sync period's note)."""
    tau = _number("tau", tau_value)
    if not 0.0 < tau <= 1.0:
        raise _refuse("tau", tau_value, "must lie in (0, 1] (1 is a hard copy)")
    if tau == 1.0:
        return {"target_network": "hard"}, {"target_network": f"{tau_origin}: a hard copy"}
    fields = {"target_network": "polyak", "target_tau": tau}
    return fields, {"target_network": f"{tau_origin} < 1: a Polyak average {when}", "target_tau": tau_origin}


def _origins(source: str, default: str, args: dict, given: dict) -> dict[str, str]:
    """Where each argument's value came from: the source file, or the library's default."""
    return {k: (f"{source}: {k}={given[k]!r}" if k in given else f"{default} {k}={v!r}") for k, v in args.items()}


# Notes on fields every import sets the same way (the TOML's comments).
COMMON_NOTES = {
    "target_tau": "a hard target has no tau",
    "double_q": "a plain max over the target network's Q-values",
    "n_step": "one-step targets",
    "epsilon_decay_steps": "the decay is a fraction of the run (epsilon_decay_fraction)",
    "layer_norm": "a plain MLP",
    **{name: "ours: an injectable bug, off" for name in BUG_FIELDS},
}


def _build(name: str, source: str, fields: dict, notes: dict, differences: list[str]) -> Imported:
    try:
        config = AgentConfig(**fields)
    except ConfigError as exc:
        raise SourceError(f"the imported config is invalid: {exc}") from None
    return Imported(name, source, config, {**COMMON_NOTES, **notes}, tuple(differences))


# --- Stable-Baselines3 and rl-zoo -----------------------------------------------------------


def from_sb3(kwargs: dict, env_id: str | None, total_timesteps: int | None, source: str = "sb3") -> Imported:
    """SB3 DQN keywords (SB3_DEFAULTS fill the rest) as our config, on SB3's schedule: train when
    num_timesteps > learning_starts and a multiple of train_freq, gradient_steps updates each
    time; sync the target every target_update_interval env steps before that step's updates."""
    given = dict(kwargs)
    env_id = given.pop("env", None) or env_id
    if not isinstance(env_id, str) or not env_id:
        raise _refuse("env", env_id, "give the env id (the `env` key or --env)")
    total = given.pop("total_timesteps", None) or given.pop("n_timesteps", None) or total_timesteps
    if total is None:
        raise _refuse("total_timesteps", None, "give the run length (DQN.learn's total_timesteps, or --steps)")
    unknown = sorted(set(given) - set(SB3_DEFAULTS) - SB3_INERT - ZOO_ONLY)
    if unknown:
        raise _refuse(unknown[0], given[unknown[0]], "not a DQN keyword of Stable-Baselines3 " + SB3_VERSION)
    for key, value in given.items():
        if key in ZOO_ONLY and key != "n_timesteps" and not (key == "n_envs" and value == 1):
            raise _refuse(key, value, "vectorised, wrapped or normalised envs are not supported (one plain env)")
    args = {**SB3_DEFAULTS, **{k: v for k, v in given.items() if k in SB3_DEFAULTS}}
    origin = _origins(source, "SB3 default", args, given)
    _refuse_what_sb3_runs_differently(args)
    train_freq = args["train_freq"]
    if isinstance(train_freq, (list, tuple)):
        if len(train_freq) != 2 or train_freq[1] != "step":
            raise _refuse("train_freq", train_freq, "only a number of steps (unit 'step'), not episodes")
        train_freq = train_freq[0]
    every = _number("train_freq", train_freq, integer=True)
    gradient_steps = _number("gradient_steps", args["gradient_steps"], integer=True)
    if gradient_steps == 0 or gradient_steps < -1:
        raise _refuse("gradient_steps", gradient_steps, "SB3 would never train (0) or it is not -1 or >= 1")
    learning_starts = _number("learning_starts", args["learning_starts"], integer=True)
    fraction = _number("exploration_fraction", args["exploration_fraction"])
    if fraction <= 0:
        raise _refuse("exploration_fraction", fraction, "SB3's schedule divides by it; use a fraction in (0, 1]")
    kwargs_policy = _policy_kwargs(args["policy_kwargs"])
    hidden = _hidden_sizes(kwargs_policy) or (64, 64)
    steps = _number("total_timesteps", total, integer=True)
    target_fields, target_notes = _target_rule(args["tau"], origin["tau"], "at each sync")
    n_step = _number("n_steps", args["n_steps"], integer=True)
    if n_step < 1:
        raise _refuse("n_steps", args["n_steps"], "must be >= 1 (1: one-step targets)")
    fields = {
        "env_id": env_id,
        "total_env_steps": steps,
        **_shared_fields(args),
        "loss": "huber",
        # SB3 trains once num_timesteps > learning_starts; our clock (steps taken) must reach L + 1.
        "learning_starts": learning_starts + 1,
        "env_steps_per_update": every,
        "gradient_steps": gradient_steps,
        "step_clock": "steps_taken",
        **target_fields,
        "target_sync_period": _number("target_update_interval", args["target_update_interval"], integer=True),
        "target_sync_unit": "env_steps",
        "max_grad_norm": _number("max_grad_norm", args["max_grad_norm"]),
        "epsilon_start": _number("exploration_initial_eps", args["exploration_initial_eps"]),
        "epsilon_end": _number("exploration_final_eps", args["exploration_final_eps"]),
        "epsilon_decay_fraction": fraction,
        "random_warmup": True,
        "hidden_sizes": hidden,
        "n_step": n_step,
    }
    notes = {
        "env_id": f"{source}: env" if "env" in kwargs else ("rl-zoo: the entry" if source == "rl-zoo" else "--env"),
        "terminal_masking": "SB3: (1 - dones) drops the bootstrap at terminal states",
        "bootstrap_on_truncation": "SB3: handle_timeout_termination=True keeps it at time limits",
        "total_env_steps": f"{source}: total timesteps {total!r}",
        "gamma": origin["gamma"],
        "learning_rate": origin["learning_rate"],
        "loss": "SB3 DQN: F.smooth_l1_loss (Huber, delta 1)",
        "batch_size": origin["batch_size"],
        "replay_capacity": origin["buffer_size"],
        "learning_starts": f"{origin['learning_starts']}, + 1: SB3 trains when num_timesteps > learning_starts",
        "env_steps_per_update": origin["train_freq"],
        "gradient_steps": origin["gradient_steps"] + (f" (-1: {every} per rollout)" if gradient_steps == -1 else ""),
        "step_clock": "SB3 counts num_timesteps, the steps taken",
        **target_notes,
        "target_sync_period": origin["target_update_interval"],
        "target_sync_unit": "SB3's _on_step syncs at every env step, before the step's gradient steps",
        "max_grad_norm": origin["max_grad_norm"],
        "epsilon_start": origin["exploration_initial_eps"],
        "epsilon_end": origin["exploration_final_eps"],
        "epsilon_decay_fraction": origin["exploration_fraction"],
        "random_warmup": "SB3 samples the action space while num_timesteps < learning_starts",
        # SB3's NStepReplayBuffer: a window stops at an episode's end (inclusive) or the newest transition.
        **({"n_step": f"{origin['n_steps']}: SB3's NStepReplayBuffer windows"} if n_step > 1 else {}),
        "hidden_sizes": origin["policy_kwargs"] if kwargs_policy.get("net_arch") else "SB3 default net_arch=[64, 64]",
    }
    differences = []
    if steps % every:
        differences.append(
            f"SB3 finishes its last rollout of train_freq={every} steps, so it runs "
            f"{-(-steps // every) * every:,} env steps; this config stops at {steps:,}"
        )
    if learning_starts == 0:
        differences.append(
            "with learning_starts=0 SB3 acts greedily at the very first step (its exploration rate is 0 "
            "until the first _on_step); this config explores from the first step"
        )
    differences.append("epsilon equals SB3's up to float rounding")
    if fields["target_network"] == "polyak":
        differences.append("the Polyak average runs SB3's polyak_update operations (mul_, then add_ with alpha)")
    if n_step > 1:
        differences.append(
            "n-step returns equal SB3's up to float rounding (it sums gamma**k * r_k at once; this adds step by step)"
        )
    name = f"{source}-dqn-{env_id}".lower()
    return _build(name, source, fields, notes, differences)


def _refuse_what_sb3_runs_differently(args: dict) -> None:
    """SB3 settings with no exact counterpart here: another policy or buffer layout."""
    if args["policy"] != "MlpPolicy":
        raise _refuse("policy", args["policy"], "only MlpPolicy (flat observations, an MLP Q-network)")
    for key in ("replay_buffer_class", "replay_buffer_kwargs"):
        if args[key]:
            raise _refuse(key, args[key], "only SB3's default uniform ReplayBuffer")
    if args["optimize_memory_usage"]:
        raise _refuse("optimize_memory_usage", True, "stores next observations differently; not supported")


def from_zoo(entry: dict, env_id: str) -> Imported:
    """An rl-zoo dqn.yml entry: SB3's keywords plus n_timesteps and the env settings."""
    if "n_timesteps" not in entry:
        raise _refuse("n_timesteps", None, "the zoo entry must give the run length")
    return from_sb3(entry, env_id, None, source="rl-zoo")


# --- CleanRL --------------------------------------------------------------------------------


def from_cleanrl(overrides: dict) -> Imported:
    """CleanRL dqn.py Args (CLEANRL_DEFAULTS fill the rest): at global_step t (0-based), act
    epsilon-greedy on linear_schedule, store, and once t > learning_starts update every
    train_frequency steps and then update the target (a copy, or a Polyak average when tau < 1)
    every target_network_frequency steps."""
    unknown = sorted(set(overrides) - set(CLEANRL_DEFAULTS) - CLEANRL_INERT)
    if unknown:
        raise _refuse(unknown[0], overrides[unknown[0]], "not an Args field of CleanRL's dqn.py")
    args = {**CLEANRL_DEFAULTS, **{k: v for k, v in overrides.items() if k in CLEANRL_DEFAULTS}}
    origin = _origins("cleanrl", "CleanRL default", args, overrides)
    if _number("num_envs", args["num_envs"], integer=True) != 1:
        raise _refuse("num_envs", args["num_envs"], "one env only")
    target_fields, target_notes = _target_rule(args["tau"], origin["tau"], "after the step's update")
    learning_starts = _number("learning_starts", args["learning_starts"], integer=True)
    fields = {
        "env_id": str(args["env_id"]),
        "total_env_steps": _number("total_timesteps", args["total_timesteps"], integer=True),
        **_shared_fields(args),
        "loss": "mse",
        "learning_starts": learning_starts + 1,
        "env_steps_per_update": _number("train_frequency", args["train_frequency"], integer=True),
        "gradient_steps": 1,
        "step_clock": "step_index",
        **target_fields,
        "target_sync_period": _number("target_network_frequency", args["target_network_frequency"], integer=True),
        "target_sync_unit": "env_steps_after_updates",
        "max_grad_norm": None,
        "epsilon_start": _number("start_e", args["start_e"]),
        "epsilon_end": _number("end_e", args["end_e"]),
        "epsilon_decay_fraction": _number("exploration_fraction", args["exploration_fraction"]),
        "hidden_sizes": CLEANRL_HIDDEN,
    }
    notes = {
        "env_id": origin["env_id"],
        "total_env_steps": origin["total_timesteps"],
        "terminal_masking": "CleanRL: dones are the terminations",
        "bootstrap_on_truncation": "CleanRL: a truncated step bootstraps from its real next observation",
        "gamma": origin["gamma"],
        "learning_rate": origin["learning_rate"],
        "loss": "CleanRL: F.mse_loss",
        "batch_size": origin["batch_size"],
        "replay_capacity": origin["buffer_size"],
        "learning_starts": f"{origin['learning_starts']}, + 1: CleanRL trains when global_step > learning_starts",
        "env_steps_per_update": origin["train_frequency"],
        "gradient_steps": "CleanRL: one update per training step",
        "step_clock": "CleanRL tests global_step, the 0-based index of the step",
        **target_notes,
        "target_sync_period": origin["target_network_frequency"],
        "target_sync_unit": "CleanRL updates the target after the step's update",
        "max_grad_norm": "CleanRL does not clip gradients",
        "epsilon_start": origin["start_e"],
        "epsilon_end": origin["end_e"],
        "epsilon_decay_fraction": origin["exploration_fraction"],
        "hidden_sizes": "CleanRL's QNetwork: 120, 84",
    }
    differences = [
        "CleanRL syncs only once global_step > learning_starts; earlier syncs here are of the untrained "
        "network onto its own copy, which changes nothing"
        + (" but float rounding (an average of two equal tensors)" if fields["target_network"] == "polyak" else ""),
        "epsilon (max(slope * t + start_e, end_e)) equals CleanRL's up to float rounding",
    ]
    if fields["target_network"] == "polyak":
        differences.append(
            "the average tau * q + (1 - tau) * target equals CleanRL's up to float rounding (other operation order)"
        )
    name = f"cleanrl-dqn-{fields['env_id']}".lower()
    return _build(name, "cleanrl", fields, notes, differences)


def import_source(source: str, path: Path, env_id: str | None = None, steps: int | None = None) -> Imported:
    """Read and import one source file; SourceError (one line) on anything it cannot run exactly."""
    if source not in SOURCES:
        raise SourceError(f"source={source!r}: must be one of {', '.join(SOURCES)}")
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None
    if source == "rl-zoo":
        env, entry = read_zoo_entry(text, env_id, str(path))
        return from_zoo(entry, env)
    if source == "sb3":
        return from_sb3(read_mapping(text, str(path)), env_id, steps)
    overrides = read_cleanrl_args(text, str(path))
    if env_id is not None:
        overrides.setdefault("env_id", env_id)
    return from_cleanrl(overrides)


def imported_toml(imported: Imported) -> str:
    """The config file of an import: every field, each with where its value came from."""
    from agents.configfile import EnvSettings, config_file_text

    header = [f"Imported by `python -m agents import {imported.source}`.", "Differences from the source's own loop:"]
    header += [f"- {d}" for d in imported.differences]
    text = config_file_text(imported.name, imported.config, EnvSettings(), "\n".join(header))
    lines = []
    for line in text.splitlines():
        key = line.split(" = ", 1)[0]
        if line.startswith("#") or " = " not in line or key == "name":
            lines.append(line)
        else:
            lines.append(f"{line}  # {imported.notes.get(key, 'ours: no counterpart in the source')}")
    return "\n".join(lines) + "\n"
