"""The seam between the probes and a DQN implementation: train it on a probe env, read its Q.

The protocol (docs/probes.md): the user gives ``train(env, total_steps, seed)``, where env is a
gymnasium env, or its registered id for code that calls ``gym.make`` itself, and gets back
something Q-values can be read from: a ``torch.nn.Module`` mapping an observation batch to
(B, n_actions), a Stable-Baselines3 ``DQN`` (its ``q_net``), or any callable doing the same.
Gamma is the returned object's ``gamma`` when it has one. Code written for old gym's API runs
through agents/probes/oldgym.py, chosen by the user or found when the first run fails on
gymnasium's API and succeeds on old gym's.

Shipped agents: a user function (``file.py:function`` or ``module:function``), the project's
engine (any AgentConfig), and SB3's DQN from keyword arguments. Errors in the user's code are
reported as theirs, in one line with their file and line (UserCodeError); bad input (a missing
file or function) is an AgentSpecError.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.probes.envs import Probe, ProbeShape, probe_env_id, recording_actions

ENV_MODES = ("auto", "env", "id")
API_MODES = ("auto", "gymnasium", "old-gym")
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # agents/
USER_MODULE_PREFIX = "_dqn_probe_user_"  # the module name a FILE.py:FUNCTION file is loaded as


class AgentSpecError(ValueError):
    """The agent named on the command line cannot be loaded: a missing file, module or function."""


class UserCodeError(RuntimeError):
    """The user's code raised, or returned something Q cannot be read from; the message is one line."""


@dataclass(frozen=True)
class TrainedQ:
    """What a training run left behind: Q as a function of an observation batch, and its gamma."""

    q: Callable[[np.ndarray], np.ndarray]  # (B, *obs_shape) float32 -> (B, n_actions) float64
    gamma: float | None  # the returned object's own discount, when it declares one
    kind: str  # what was returned, for messages
    # (state index, action) of every step the run took on the probe envs, in order; empty when the
    # agent's envs are not the probe envs of this process (the engine's own env copies)
    actions: tuple[tuple[int, int], ...] = ()


def where_in(tb, files: set[str]) -> str:
    """'file.py:LINE' of the deepest frame in `files`, else of the deepest frame outside this
    package and the libraries; the user's own line is what they need to see."""
    frames = traceback.extract_tb(tb)
    if not frames:
        return "?"
    mine = [f for f in frames if os.path.abspath(f.filename) in files]
    if not mine:
        mine = [
            f
            for f in frames
            if not os.path.abspath(f.filename).startswith(str(PACKAGE_DIR))
            and "site-packages" not in f.filename
            and not f.filename.startswith(sys.prefix)
            and not f.filename.startswith(sys.base_prefix)
        ]
    frame = (mine or frames)[-1]
    return f"{_shown_path(frame.filename)}:{frame.lineno}"


def _shown_path(filename: str) -> str:
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return path.name


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def user_error(what: str, exc: BaseException, files: set[str]) -> UserCodeError:
    """'your train() raised ValueError: bad shape at my_dqn.py:42'."""
    return UserCodeError(f"{what} raised {_first_line(exc)} at {where_in(exc.__traceback__, files)}")


# --- reading Q from what train() returned --------------------------------------------------


def _is_sb3_dqn(obj: Any) -> bool:
    return hasattr(obj, "q_net") and hasattr(obj, "policy") and hasattr(obj, "learn")


def _declared_gamma(obj: Any) -> float | None:
    gamma = getattr(obj, "gamma", None)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.floating)):
        return None
    gamma = float(gamma)
    return gamma if 0.0 <= gamma < 1.0 else None


def _module_q(module) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def q(obs: np.ndarray) -> np.ndarray:
        params = next(iter(module.parameters()), None)
        device = params.device if params is not None else torch.device("cpu")
        dtype = params.dtype if params is not None and params.dtype.is_floating_point else torch.float32
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                out = module(torch.as_tensor(obs, dtype=dtype, device=device))
        finally:
            module.train(was_training)
        if isinstance(out, (tuple, list)):
            raise TypeError(f"it returned a {type(out).__name__}, not one tensor of Q-values")
        return out.detach().double().cpu().numpy()

    return q


def _callable_q(fn) -> Callable[[np.ndarray], np.ndarray]:
    def q(obs: np.ndarray) -> np.ndarray:
        out = fn(obs)
        if hasattr(out, "detach"):  # a torch tensor
            out = out.detach().cpu().numpy()
        return np.asarray(out, dtype=np.float64)

    return q


def read_q(obj: Any, what: str = "your train()") -> TrainedQ:
    """Q as a function of an observation batch, from what train() returned."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None
    if _is_sb3_dqn(obj):
        return TrainedQ(_module_q(obj.q_net), _declared_gamma(obj), "Stable-Baselines3 DQN")
    if torch is not None and isinstance(obj, torch.nn.Module):
        return TrainedQ(_module_q(obj), _declared_gamma(obj), f"torch module {type(obj).__name__}")
    if callable(obj) and not isinstance(obj, type):
        return TrainedQ(_callable_q(obj), _declared_gamma(obj), f"callable {type(obj).__name__}")
    raise UserCodeError(
        f"{what} returned {_describe(obj)}, which Q-values cannot be read from: return a torch.nn.Module "
        "(observation batch -> (B, n_actions)), a Stable-Baselines3 DQN, or a callable doing the same"
    )


def _describe(obj: Any) -> str:
    if obj is None:
        return "None"
    return f"a {type(obj).__module__}.{type(obj).__qualname__}".replace("builtins.", "")


def q_values(trained: TrainedQ, obs: np.ndarray, n_actions: int, files: set[str] = frozenset()) -> np.ndarray:
    """Q on an observation batch as a (B, n_actions) float64 array; one line naming the problem
    when the returned object cannot give it."""
    try:
        q = trained.q(obs)
    except Exception as exc:
        raise UserCodeError(
            f"Q-values could not be read from the returned {trained.kind}: {_first_line(exc)} "
            f"at {where_in(exc.__traceback__, set(files))} (given a {tuple(obs.shape)} float32 observation batch)"
        ) from None
    expected = (len(obs), n_actions)
    if q.shape != expected:
        raise UserCodeError(
            f"the returned {trained.kind} gave Q-values of shape {tuple(q.shape)} for {len(obs)} observations; "
            f"expected {expected} (batch x actions)"
        )
    return q


# --- agents ----------------------------------------------------------------------------------


class Agent:
    """Something the probes can train: one TrainedQ per seed on a probe env."""

    name: str = "agent"
    gamma: float | None = None  # the discount the agent is known to use (None: ask the runs)
    files: frozenset[str] = frozenset()  # the user's source files, for error lines
    notes: list[str]

    def train(self, probe: Probe, shape: ProbeShape, total_steps: int, seeds: list[int]) -> list[TrainedQ]:
        raise NotImplementedError


def _takes_id(fn: Callable) -> bool | None:
    """Whether fn's first parameter asks for an env id (annotated str, or named like one);
    None when the signature does not say."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if not parameters:
        return None
    first = parameters[0]
    annotation = first.annotation
    if annotation is str or annotation == "str":
        return True
    if isinstance(annotation, type) and issubclass(annotation, gym.Env) or annotation in ("gym.Env", "Env"):
        return False
    if first.name in ("env_id", "env_name", "id", "environment_id"):
        return True
    return None


def _made_an_env(exc: BaseException) -> bool:
    """Whether the error came from gym.make given our env object (the code wants an id)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return any("registration.py" in f.filename and "gymnasium" in f.filename for f in frames)


@dataclass
class FunctionAgent(Agent):
    """The user's ``train(env, total_steps, seed)``.

    env_mode: "env" passes a gymnasium env, "id" its registered id, "auto" decides from the
    signature and otherwise passes an env, switching to the id when the code hands our env to
    gym.make. api: "old-gym" passes old gym's API; "auto" switches to it when the first run
    fails on gymnasium's API and succeeds on old gym's.
    """

    fn: Callable
    name: str = "train"
    env_mode: str = "auto"
    api: str = "auto"
    files: frozenset[str] = frozenset()
    notes: list[str] = field(default_factory=list)
    spec: str | None = None  # the FILE.py:FUNCTION or MODULE:FUNCTION it was loaded from

    def __post_init__(self) -> None:
        if self.env_mode not in ENV_MODES:
            raise AgentSpecError(f"env_mode={self.env_mode!r} is invalid: must be one of {ENV_MODES}")
        if self.api not in API_MODES:
            raise AgentSpecError(f"api={self.api!r} is invalid: must be one of {API_MODES}")
        if not callable(self.fn):
            raise AgentSpecError(f"agent={self.name!r} is invalid: it is not a function")
        if self.env_mode == "auto":
            takes_id = _takes_id(self.fn)
            if takes_id is not None:
                self.env_mode = "id" if takes_id else "env"
        self.gamma = None

    def _call(self, probe: Probe, shape: ProbeShape, total_steps: int, seed: int, old_gym: bool, as_id: bool):
        """One run: what train() returned, and the (state, action) of every step it took."""
        env_id = probe_env_id(probe, shape, old_gym=old_gym)
        env = env_id if as_id else gym.make(env_id)
        try:
            with recording_actions() as log:
                return self.fn(env, total_steps, seed), tuple(log)
        finally:
            if not as_id:
                env.close()

    def _first_run(self, probe: Probe, shape: ProbeShape, total_steps: int, seed: int):
        """The first run settles what the code wants (env or id, gymnasium's API or old gym's)."""
        old_gym = self.api == "old-gym"
        as_id = self.env_mode == "id"
        try:
            return self._call(probe, shape, total_steps, seed, old_gym, as_id)
        except Exception as first:
            attempts = []
            if self.env_mode == "auto" and not as_id and _made_an_env(first):
                attempts.append((old_gym, True, "your train() calls gym.make itself: it is given env ids"))
            if self.api == "auto":
                attempts.append((True, as_id, "your train() failed on gymnasium's API: it runs on old gym's"))
                if self.env_mode == "auto" and not as_id:
                    attempts.append((True, True, "your train() calls gym.make on old gym's API: it is given ids"))
            for try_old, try_id, note in attempts:
                try:
                    result = self._call(probe, shape, total_steps, seed, try_old, try_id)
                except Exception:
                    continue
                self.api = "old-gym" if try_old else "gymnasium"
                self.env_mode = "id" if try_id else "env"
                self.notes.append(note)
                return result
            raise user_error("your train()", first, set(self.files)) from None
        finally:
            if self.env_mode == "auto":
                self.env_mode = "env"
            if self.api == "auto":
                self.api = "gymnasium"

    def __getstate__(self) -> dict:
        """A function loaded from a FILE.py:FUNCTION spec travels to worker processes as its spec."""
        state = dict(self.__dict__)
        if self.spec is not None:  # a file loaded by path is no importable module in a worker
            state["fn"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.fn is None:
            self.fn, _ = load_function(self.spec)

    def train(self, probe: Probe, shape: ProbeShape, total_steps: int, seeds: list[int]) -> list[TrainedQ]:
        trained = []
        for seed in seeds:
            if self.env_mode == "auto" or self.api == "auto":
                result, actions = self._first_run(probe, shape, total_steps, seed)
            else:
                try:
                    result, actions = self._call(
                        probe, shape, total_steps, seed, self.api == "old-gym", self.env_mode == "id"
                    )
                except Exception as exc:
                    raise user_error("your train()", exc, set(self.files)) from None
            trained.append(dataclasses.replace(read_q(result), actions=actions))
        return trained


def load_function(spec: str) -> tuple[Callable, frozenset[str]]:
    """`path/to/file.py:function` or `module:function` -> (the function, its source file)."""
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise AgentSpecError(f"agent={spec!r} is invalid: give FILE.py:FUNCTION or MODULE:FUNCTION")
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = Path(target)
        if not path.is_file():
            raise AgentSpecError(f"agent={spec!r} is invalid: no file {target}")
        path = path.resolve()
        # Named by the file's whole path, so two users' train.py files in one process (a/train.py,
        # b/train.py) are two modules, not one slot the second overwrites.
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
        module_name = f"{USER_MODULE_PREFIX}{path.stem}_{digest}"
        # The user's file imports its neighbours, as `python file.py` would let it.
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise AgentSpecError(
                f"agent={spec!r} is invalid: importing {target} raised {_first_line(exc)} "
                f"at {where_in(exc.__traceback__, {str(path)})}"
            ) from None
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            if exc.name and target.startswith(exc.name):
                raise AgentSpecError(f"agent={spec!r} is invalid: no module named {target!r}") from None
            raise AgentSpecError(f"agent={spec!r} is invalid: importing {target} raised {_first_line(exc)}") from None
        except Exception as exc:
            raise AgentSpecError(
                f"agent={spec!r} is invalid: importing {target} raised {_first_line(exc)} "
                f"at {where_in(exc.__traceback__, set())}"
            ) from None
        path = Path(getattr(module, "__file__", "") or "")
    fn = getattr(module, name, None)
    if fn is None:
        raise AgentSpecError(f"agent={spec!r} is invalid: {target} has no function {name!r}")
    if not callable(fn):
        raise AgentSpecError(f"agent={spec!r} is invalid: {target}.{name} is a {type(fn).__name__}, not a function")
    return fn, frozenset({str(path.resolve())} if str(path) else set())


def function_agent(fn_or_spec: Callable | str, env_mode: str = "auto", api: str = "auto") -> FunctionAgent:
    """A FunctionAgent from a function or a `file.py:function` / `module:function` spec."""
    if isinstance(fn_or_spec, str):
        fn, files = load_function(fn_or_spec)
        return FunctionAgent(fn, fn_or_spec, env_mode, api, files, spec=fn_or_spec)
    source = inspect.getsourcefile(fn_or_spec) if inspect.isfunction(fn_or_spec) else None
    files = frozenset({str(Path(source).resolve())}) if source else frozenset()
    return FunctionAgent(fn_or_spec, getattr(fn_or_spec, "__name__", "train"), env_mode, api, files)


# --- the project's engine ---------------------------------------------------------------------


@dataclass
class EngineAgent(Agent):
    """The project's batched engine (agents.engine.loop.train) with any AgentConfig: every seed in one
    run, Q read from each seed's online network after the last update."""

    config: Any  # AgentConfig
    name: str = "engine"
    trains_seeds_together = True  # one batched run per probe (battery's workers split probes, not seeds)
    notes: list[str] = field(default_factory=list)
    files: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.gamma = float(self.config.gamma)

    def train(self, probe: Probe, shape: ProbeShape, total_steps: int, seeds: list[int]) -> list[TrainedQ]:
        import torch

        from agents.engine.loop import train
        from agents.engine.networks import forward

        if shape.is_image:
            raise AgentSpecError("agent='engine' is invalid with image observations: the engine's Q-network is an MLP")
        config = self.config.replace(
            env_id=probe_env_id(probe, shape), total_env_steps=total_steps, eval_episodes=0, eval_period=total_steps
        )
        online_params = []

        def keep(step, updates, online, target):
            if not online_params:
                online_params.append(online)

        train(config, list(seeds), on_update=keep)
        if not online_params:  # no update in the budget: the networks as initialised
            return [TrainedQ(lambda obs: np.zeros((len(obs), shape.n_actions)), self.gamma, "engine network")] * len(
                seeds
            )
        online = online_params[0]

        def reader(k: int):
            def q(obs: np.ndarray) -> np.ndarray:
                x = torch.as_tensor(obs, dtype=torch.float32).expand(len(seeds), *obs.shape).contiguous()
                with torch.no_grad():
                    return forward(online, x)[k].double().cpu().numpy()

            return q

        return [TrainedQ(reader(k), self.gamma, "engine network") for k in range(len(seeds))]


def engine_agent(spec: str) -> EngineAgent:
    """`engine:VARIANT` (a preset of agents/catalogue/presets.py) or `engine:path/to/config.toml`."""
    from agents.catalogue.presets import VARIANTS
    from agents.config import ConfigError
    from agents.configfile import load_config_file

    name = spec.split(":", 1)[1] if ":" in spec else "article-target"
    if name in VARIANTS:
        return EngineAgent(VARIANTS[name].config, f"engine:{name}")
    if name.endswith(".toml"):
        try:
            loaded = load_config_file(name)
        except (ConfigError, OSError) as exc:
            raise AgentSpecError(f"agent={spec!r} is invalid: {exc}") from None
        return EngineAgent(loaded.config, f"engine:{loaded.name}")
    raise AgentSpecError(f"agent={spec!r} is invalid: {name!r} is neither a preset variant nor a .toml config file")


# --- Stable-Baselines3 ------------------------------------------------------------------------

# SB3's DQN defaults (a target synced every 10,000 steps, learning from step 100 every 4 steps
# at 1e-4) are sized for Atari; on a probe of a few thousand steps the target would never move.
# These are sized like the probes' plain DQN: sync every 100 steps, learn every step at 1e-3.
SB3_PROBE_KWARGS = {
    "learning_rate": 1e-3,
    "buffer_size": 10_000,
    "learning_starts": 100,
    "batch_size": 64,
    "train_freq": 1,
    "gradient_steps": 1,
    "target_update_interval": 100,
    "exploration_fraction": 0.3,
    "exploration_final_eps": 0.05,
    "policy_kwargs": {"net_arch": [64, 64]},
}


@dataclass
class SB3Agent(Agent):
    """Stable-Baselines3's DQN built from keyword arguments (over SB3_PROBE_KWARGS)."""

    kwargs: dict = field(default_factory=dict)
    name: str = "sb3"
    notes: list[str] = field(default_factory=list)
    files: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        try:
            from stable_baselines3 import DQN  # noqa: F401
        except ImportError:
            raise AgentSpecError("agent='sb3' is invalid: pip install stable-baselines3") from None
        self.kwargs = {**SB3_PROBE_KWARGS, **self.kwargs}
        self.gamma = float(self.kwargs.get("gamma", 0.99))

    def train(self, probe: Probe, shape: ProbeShape, total_steps: int, seeds: list[int]) -> list[TrainedQ]:
        from stable_baselines3 import DQN

        trained = []
        for seed in seeds:
            env = gym.make(probe_env_id(probe, shape))
            kwargs = dict(self.kwargs)
            policy = kwargs.pop("policy", "MlpPolicy")
            try:
                model = DQN(policy, env, seed=seed, device="cpu", **kwargs)
            except TypeError as exc:
                raise AgentSpecError(f"sb3_kwargs={self.kwargs!r} is invalid: {exc}") from None
            with recording_actions() as log:
                model.learn(total_timesteps=total_steps)
            trained.append(dataclasses.replace(read_q(model, "SB3's DQN"), actions=tuple(log)))
            env.close()
        return trained
