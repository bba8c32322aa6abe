"""Probe environments: tiny MDPs whose exact Q-values are known in closed form for any gamma.

Each probe isolates one mechanism of DQN (Andy Jones' five probes, then five DQN-specific
ones), so a learned Q that misses its value points at the mechanism. A probe has a few
states; each state is shown to the agent as one number x written into the observation
(dimension 0 of a vector, every pixel of an image; every other dimension is 0), so any
observation shape works and the extra dimensions carry no signal and no noise. Actions past
the ones a probe uses behave exactly like its last "wrong" action, so the expected Q of every
action stays exact for any action count. Every random draw comes from the env's generator,
seeded by ``reset(seed=...)``.

Conventions the closed forms rely on: the observation returned with a terminal step is stated
per probe (it is what an agent that forgets to mask terminals bootstraps from); episodes that
end by time limit set ``truncated`` (terminated stays False) in the env itself, so the same
flags reach code that wraps the env or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

NAMESPACE = "dqn-probes"
# CartPole-v1's shape: most DQN scripts hard-code it, so it is the default.
DEFAULT_OBS_SHAPE = (4,)
DEFAULT_ACTIONS = 2
# The time-limit probe's episode length: two steps keep the value a time-limit-as-terminal
# agent converges to, 1 / (1 - gamma / 2), below 2 for every gamma, far under r / (1 - gamma).
TIME_LIMIT = 2
# The delayed-reward probe: the reward comes k steps after the first observation, so the first
# state's value is gamma^(k-1) and the discount the agent applied is its (k-1)-th root.
DELAY = 6


@dataclass(frozen=True)
class ProbeShape:
    """The observation shape and action count the probes are built with (the user's env's)."""

    obs_shape: tuple[int, ...] = DEFAULT_OBS_SHAPE
    n_actions: int = DEFAULT_ACTIONS

    def __post_init__(self) -> None:
        shape = tuple(self.obs_shape)
        object.__setattr__(self, "obs_shape", shape)
        if len(shape) not in (1, 3) or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape):
            raise ValueError(
                f"obs_shape={shape!r} is invalid: give a vector size (N,) or an image (C, H, W), every size >= 1"
            )
        if isinstance(self.n_actions, bool) or not isinstance(self.n_actions, int) or self.n_actions < 1:
            raise ValueError(f"n_actions={self.n_actions!r} is invalid: must be an integer >= 1")

    @property
    def is_image(self) -> bool:
        return len(self.obs_shape) == 3

    @property
    def tag(self) -> str:
        """A short id fragment: o4-a2 (vector) or img3x84x84-a6 (image)."""
        obs = "x".join(map(str, self.obs_shape))
        return f"{'img' if self.is_image else 'o'}{obs}-a{self.n_actions}"

    def encode(self, x: float) -> np.ndarray:
        """The observation of a state with code x: x in dimension 0 (every pixel of an image), 0 elsewhere."""
        if self.is_image:
            return np.full(self.obs_shape, x, dtype=np.float32)
        obs = np.zeros(self.obs_shape, dtype=np.float32)
        obs[0] = x
        return obs


def shape_like(env_id: str) -> ProbeShape:
    """The probe shape of a registered gymnasium env: its observation shape and action count."""
    try:
        env = gym.make(env_id)
    except (gym.error.Error, ModuleNotFoundError, ImportError) as exc:
        raise ValueError(f"like={env_id!r} is invalid: cannot make that env ({exc})") from None
    try:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ValueError(f"like={env_id!r} is invalid: its action space {env.action_space} is not Discrete")
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) not in (1, 3):
            raise ValueError(f"like={env_id!r} is invalid: its observation space {space} is not a vector or image Box")
        return ProbeShape(tuple(int(n) for n in space.shape), int(env.action_space.n))
    finally:
        env.close()


# --- the probes' dynamics -------------------------------------------------------------------
# A state is an index into the probe's `codes`. step(state, action, t) -> (reward, next state,
# terminated, truncated), t the steps taken before this one in the episode.


def _one_step(reward: Callable[[int, int], float]):
    """A one-step episode from `state`: the reward, then termination showing the same state."""

    def step(state: int, action: int, t: int):
        return reward(state, action), state, True, False

    return step


def _constant(state, action, t):
    return 1.0, state, True, False


def _chain(length: int, final_reward: float = 1.0, step_reward: float = 0.0, terminal_next: int | None = None):
    """States 0 .. length-1 in a row: step_reward between them, final_reward on the last step,
    which terminates showing terminal_next (the last state itself by default)."""

    def step(state: int, action: int, t: int):
        if state < length - 1:
            return step_reward, state + 1, False, False
        return final_reward, length - 1 if terminal_next is None else terminal_next, True, False

    return step


def _time_limit(state, action, t):
    return 1.0, state, False, t + 1 >= TIME_LIMIT


def _terminate_or_truncate(state, action, t):
    if state == 0:  # A: nothing now; the episode is cut by its time limit, showing B
        return 0.0, 1, False, True
    return 1.0, 1, True, False  # B: reward 1, a true end


def _right_action(state: int) -> int:
    """The rewarded action of the observation-and-action probe: 0 at x = -1, 1 at x = +1."""
    return state


@dataclass(frozen=True)
class Probe:
    """One probe: its dynamics, the states Q is read at, the exact Q of a correct DQN, and the
    Q-values named wrong learning rules converge to on it (what causes.py matches against)."""

    name: str
    checks: str  # the mechanism it isolates, in a line
    codes: tuple[float, ...]  # each state's observation code x
    labels: tuple[str, ...]  # each state's name in reports
    start: Callable[[np.random.Generator], int]
    step: Callable[[int, int, int], tuple[float, int, bool, bool]]
    # (gamma, n_actions) -> (states, n_actions) exact Q of a correct DQN
    expected: Callable[[float, int], np.ndarray]
    # (gamma, n_actions) -> {wrong rule: its (states, n_actions) fixed point}
    alternatives: Callable[[float, int], dict[str, np.ndarray]] = field(default=lambda gamma, n: {})
    depth: int = 1  # backups from the reward to the farthest state (sizes the step budget)
    min_actions: int = 1  # probes about choosing an action need two

    @property
    def env_id(self) -> str:
        return f"{NAMESPACE}/{self.name}-v0"


def _same(values, n_actions: int) -> np.ndarray:
    """Per-state values shared by every action, as a (states, n_actions) array."""
    return np.repeat(np.asarray(values, dtype=np.float64)[:, None], n_actions, axis=1)


def _action_reward(n_actions: int, right: int) -> np.ndarray:
    """+1 for the right action, -1 for every other one."""
    q = np.full(n_actions, -1.0)
    q[right] = 1.0
    return q


def _delay_values(gamma: float) -> np.ndarray:
    return np.array([gamma ** (DELAY - 1 - i) for i in range(DELAY)])


PROBES: tuple[Probe, ...] = (
    Probe(
        "ConstantReward",
        "value learning at all: one step, reward 1, Q = 1",
        (1.0,),
        ("s",),
        lambda rng: 0,
        _constant,
        lambda g, n: _same([1.0], n),
        lambda g, n: {"unmasked": _same([1 / (1 - g)], n)},
    ),
    Probe(
        "ObservationReward",
        "the observation reaches the network: reward +1 or -1 as the observation says",
        (-1.0, 1.0),
        ("x=-1", "x=+1"),
        lambda rng: int(rng.integers(2)),
        _one_step(lambda s, a: (-1.0, 1.0)[s]),
        lambda g, n: _same([-1.0, 1.0], n),
        lambda g, n: {"observation_ignored": _same([0.0, 0.0], n), "unmasked": _same([-1 / (1 - g), 1 / (1 - g)], n)},
    ),
    Probe(
        "TwoStep",
        "discounting: reward 1 one step after the first observation, V(s0) = gamma, V(s1) = 1",
        (1.0, -1.0),
        ("s0", "s1"),
        lambda rng: 0,
        _chain(2),
        lambda g, n: _same([g, 1.0], n),
        lambda g, n: {"no_bootstrap": _same([0.0, 1.0], n), "unmasked": _same([g / (1 - g), 1 / (1 - g)], n)},
        depth=2,
    ),
    Probe(
        "ActionReward",
        "the greedy action: action 1 pays +1, every other action -1",
        (1.0,),
        ("s",),
        lambda rng: 0,
        _one_step(lambda s, a: 1.0 if a == 1 else -1.0),
        lambda g, n: _action_reward(n, 1)[None, :],
        # Unmasked, every action bootstraps from the same state's best value, 1 / (1 - gamma).
        lambda g, n: {"unmasked": _action_reward(n, 1)[None, :] + g / (1 - g)},
        min_actions=2,
    ),
    Probe(
        "ObservationActionReward",
        "the action taken is the one updated (gather, batching): the right action depends on the observation",
        (-1.0, 1.0),
        ("x=-1", "x=+1"),
        lambda rng: int(rng.integers(2)),
        _one_step(lambda s, a: 1.0 if a == _right_action(s) else -1.0),
        lambda g, n: np.stack([_action_reward(n, 0), _action_reward(n, 1)]),
        lambda g, n: {
            "observation_ignored": np.repeat(((_action_reward(n, 0) + _action_reward(n, 1)) / 2)[None, :], 2, 0)
        },
        min_actions=2,
    ),
    Probe(
        "TimeLimit",
        f"bootstrapping on truncation: reward 1 every step, cut by a {TIME_LIMIT}-step time limit, Q = 1/(1-gamma)",
        (1.0,),
        ("s",),
        lambda rng: 0,
        _time_limit,
        lambda g, n: _same([1 / (1 - g)], n),
        # Treated as terminal, 1 in TIME_LIMIT of the stored transitions stops the bootstrap, and
        # the one observation cannot tell them apart: Q = 1 + gamma (1 - 1/L) Q.
        lambda g, n: {
            "time_limit_terminal": _same([1 / (1 - g * (1 - 1 / TIME_LIMIT))], n),
            "no_bootstrap": _same([1.0], n),
        },
        depth=4,
    ),
    Probe(
        "TerminateOrTruncate",
        "the two masks apart: from A the episode is truncated showing B (Q = gamma), from B it terminates (Q = 1)",
        (1.0, -1.0),
        ("A", "B"),
        lambda rng: int(rng.integers(2)),
        _terminate_or_truncate,
        lambda g, n: _same([g, 1.0], n),
        lambda g, n: {
            "time_limit_terminal": _same([0.0, 1.0], n),
            # The same values: told apart by the two-step probe (causes.explain).
            "no_bootstrap": _same([0.0, 1.0], n),
            "unmasked": _same([g / (1 - g), 1 / (1 - g)], n),
        },
        depth=2,
    ),
    Probe(
        "DelayedReward",
        f"the discount applied once per step and the next state stored: reward 1 after {DELAY} steps, "
        f"Q(s_i) = gamma^({DELAY - 1} - i)",
        tuple(float(x) for x in np.linspace(1.0, -1.0, DELAY)),
        tuple(f"s{i}" for i in range(DELAY)),
        lambda rng: 0,
        _chain(DELAY),
        lambda g, n: _same(_delay_values(g), n),
        lambda g, n: {
            "no_bootstrap": _same([0.0] * (DELAY - 1) + [1.0], n),
            "unmasked": _same(_delay_values(g) / (1 - g), n),
        },
        depth=DELAY,
    ),
    Probe(
        "ResetObservation",
        "the reset observation is used: s0 is seen only as the first observation (reward 1), then s1 (reward 0)",
        (1.0, -1.0),
        ("s0", "s1"),
        lambda rng: 0,
        _chain(2, final_reward=0.0, step_reward=1.0),
        lambda g, n: _same([1.0, 0.0], n),
        # Without the reset observation, each episode's first step is stored as a step from the
        # last one's terminal observation s1: s1 then sees (r 1, on to s1) and (r 0, end) equally.
        # A (B, 1) prediction against a (B,) target: every Q goes to the replay's mean target,
        # half (r 1 + g m) and half (r 0, terminal): m = 1 / (2 - g), at both states. (s', a, r, s')
        # stored (obs overwritten before the push) also gives s1 1 / (2 - g) and never stores s0.
        lambda g, n: {
            "broadcast": _same([1 / (2 - g), 1 / (2 - g)], n),
            "reset_dropped": _same([np.nan, 1 / (2 - g)], n),
        },
        depth=2,
    ),
    Probe(
        "LastStep",
        "terminal masking: reward 1 at both steps, the last one terminates showing s0 again, Q = (1 + gamma, 1)",
        (1.0, -1.0),
        ("s0", "s1"),
        lambda rng: 0,
        _chain(2, final_reward=1.0, step_reward=1.0, terminal_next=0),
        lambda g, n: _same([1 + g, 1.0], n),
        lambda g, n: {
            "unmasked": _same([1 / (1 - g), 1 / (1 - g)], n),
            # The flag of the step before: s0's step looks terminal, s1's bootstraps from s0.
            "terminal_shift": _same([1.0, 1 + g], n),
            "no_bootstrap": _same([1.0, 1.0], n),
            # next_obs stored as obs: s0's step bootstraps from s0 itself, s1's is masked.
            "self_bootstrap": _same([1 / (1 - g), 1.0], n),
            # obs overwritten by next_obs before the push, (s', a, r, s') stored: s0's step is stored
            # as (s1, r 1, s1), a self-loop (s1 -> 1 / (1 - g)); s1's as (s0, r 1, s0, terminated) -> 1.
            "next_state_not_stored": _same([1.0, 1 / (1 - g)], n),
            # A (B, 1) prediction against a (B,) target: every Q regresses to the mean target of the
            # replay, half (r 1 + g m) from s0 and half (r 1, terminal) from s1: m = 1 / (1 - g/2).
            "broadcast": _same([1 / (1 - g / 2), 1 / (1 - g / 2)], n),
        },
        depth=2,
    ),
)
PROBES_BY_NAME = {probe.name: probe for probe in PROBES}


# What the agent did: every (state, action) a ProbeEnv is stepped with while a recording is open
# (a stack, so a recording inside another one sees only its own steps). Process-local: a worker
# process records its own runs.
_RECORDINGS: list[list[tuple[int, int]]] = []


@contextmanager
def recording_actions() -> Iterator[list[tuple[int, int]]]:
    """Every (state index, action) any ProbeEnv of this process is stepped with inside the block,
    in order: the agent's behaviour, seen by the envs (the user's code needs no change)."""
    log: list[tuple[int, int]] = []
    _RECORDINGS.append(log)
    try:
        yield log
    finally:
        _RECORDINGS.remove(log)


class ProbeEnv(gym.Env):
    """A probe as a gymnasium env (gymnasium's API: reset -> (obs, info), step -> 5-tuple)."""

    metadata = {"render_modes": []}

    def __init__(self, probe: str, obs_shape=DEFAULT_OBS_SHAPE, n_actions: int = DEFAULT_ACTIONS):
        if probe not in PROBES_BY_NAME:
            raise ValueError(f"probe={probe!r} is invalid: known probes are {', '.join(PROBES_BY_NAME)}")
        self.probe = PROBES_BY_NAME[probe]
        self.shape = ProbeShape(tuple(obs_shape), int(n_actions))
        if self.shape.n_actions < self.probe.min_actions:
            raise ValueError(f"n_actions={n_actions} is invalid: probe {probe} needs {self.probe.min_actions}")
        self.observation_space = gym.spaces.Box(-1.0, 1.0, self.shape.obs_shape, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.shape.n_actions)
        self._state = 0
        self._t = 0

    def state_observations(self) -> np.ndarray:
        """The observation of every state, in the probe's state order: the batch Q is read on."""
        return np.stack([self.shape.encode(x) for x in self.probe.codes])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = self.probe.start(self.np_random)
        self._t = 0
        return self.shape.encode(self.probe.codes[self._state]), {"probe_state": self.probe.labels[self._state]}

    def step(self, action):
        action = int(action)
        if not 0 <= action < self.shape.n_actions:
            raise ValueError(f"action={action!r} is invalid: the action space is {self.action_space}")
        if _RECORDINGS:
            _RECORDINGS[-1].append((self._state, action))
        reward, self._state, terminated, truncated = self.probe.step(self._state, action, self._t)
        self._t = 0 if terminated or truncated else self._t + 1
        obs = self.shape.encode(self.probe.codes[self._state])
        return obs, float(reward), bool(terminated), bool(truncated), {"probe_state": self.probe.labels[self._state]}


def _make_old_gym(**kwargs):
    from agents.probes.oldgym import OldGymEnv

    return OldGymEnv(ProbeEnv(**kwargs))


def probe_env_id(probe: Probe | str, shape: ProbeShape = ProbeShape(), old_gym: bool = False) -> str:
    """The registered id of `probe` built with `shape` (registered here on first use), so code
    that calls gym.make itself gets the user's shapes: dqn-probes/TwoStep-o4-a2-v0. With old_gym
    the env speaks old gym's API (agents/probes/oldgym.py)."""
    probe = PROBES_BY_NAME[probe] if isinstance(probe, str) else probe
    env_id = f"{NAMESPACE}/{probe.name}-{shape.tag}{'-oldgym' if old_gym else ''}-v0"
    if env_id not in gym.registry:
        gym.register(
            env_id,
            entry_point=_make_old_gym if old_gym else ProbeEnv,
            kwargs={"probe": probe.name, "obs_shape": shape.obs_shape, "n_actions": shape.n_actions},
            # gymnasium's checker rejects old gym's 4-tuple; the probes are checked by the tests.
            disable_env_checker=old_gym,
        )
    return env_id


def register_default_probes() -> None:
    """Register every probe under its plain id (CartPole's shape): dqn-probes/ConstantReward-v0."""
    for probe in PROBES:
        if probe.env_id not in gym.registry:
            gym.register(probe.env_id, entry_point=ProbeEnv, kwargs={"probe": probe.name})


def expected_q(probe: Probe | str, gamma: float, n_actions: int = DEFAULT_ACTIONS) -> np.ndarray:
    """The exact Q-values (states x actions) a correct DQN with discount gamma converges to."""
    probe = PROBES_BY_NAME[probe] if isinstance(probe, str) else probe
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma={gamma!r} is invalid: must lie in [0, 1)")
    return probe.expected(float(gamma), n_actions)
