"""Named agent variants: the article's three examples and single-knob ablations around them.

Each variant differs from the one it is built on by one knob, so a comparison between the two
measures that knob alone. Where the article is silent, the values are documented defaults:

- learning_rate 1e-3: torch.optim.Adam's default, which the article's code uses.
- gamma 0.99: the usual discount for CartPole; the article leaves it as a parameter.
- batch_size 64 and replay_capacity 10,000: common CartPole DQN settings (e.g. CleanRL uses
  batch 128 and 10,000); the article leaves both as parameters.
- target_sync_period 100 gradient updates: short enough to sync often in a 50k-step run,
  long enough to hold the target still over many updates.
- epsilon constant 0.1: the article's choose_action default; there is no decay.
- hidden_sizes (64, 64), MSE loss, Adam: as in the article's QNetwork and training loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.catalogue.bugs import CATALOGUE
from agents.config import AgentConfig, ConfigError

OUTCOMES = ("converge", "soft_divergence", "hard_divergence")


@dataclass(frozen=True)
class Variant:
    """A named configuration, what it tests, and the outcome it is expected to show on CartPole."""

    name: str
    config: AgentConfig
    summary: str
    # None: the variant makes no claim of its own; it is a point of a sweep.
    expected_outcome: str | None

    def __post_init__(self) -> None:
        if self.expected_outcome is not None and self.expected_outcome not in OUTCOMES:
            raise ConfigError(f"expected_outcome={self.expected_outcome!r} is invalid: must be one of {OUTCOMES}")


# Example 1: online updates on the latest transition; the target uses the online network and
# never masks terminal states (the loop ends on done but the target ignores it).
ARTICLE_NAIVE = AgentConfig(
    replay_capacity=None,
    batch_size=1,
    learning_starts=1,
    target_network="none",
    target_sync_period=None,
    terminal_masking=False,
    bootstrap_on_truncation=True,
)
# Example 2: replay, updates once the buffer holds a batch; old-gym `done` masks both real
# terminations and the time limit.
ARTICLE_REPLAY = AgentConfig(
    replay_capacity=10_000,
    batch_size=64,
    learning_starts=64,
    target_network="none",
    target_sync_period=None,
    terminal_masking=True,
    bootstrap_on_truncation=False,
)
# Example 3: example 2 plus a target network copied every 100 gradient updates.
ARTICLE_TARGET = ARTICLE_REPLAY.replace(target_network="hard", target_sync_period=100)

_VARIANTS = [
    Variant(
        "article-naive",
        ARTICLE_NAIVE,
        "Article example 1: no replay, no target network, unmasked terminals.",
        "soft_divergence",
    ),
    Variant(
        "article-replay",
        ARTICLE_REPLAY,
        "Article example 2: example 1 plus experience replay (old-gym done).",
        "converge",
    ),
    Variant(
        "article-target",
        ARTICLE_TARGET,
        "Article example 3: example 2 plus a target network synced every 100 updates.",
        "converge",
    ),
    Variant(
        "naive-masked",
        ARTICLE_NAIVE.replace(terminal_masking=True),
        "Example 1 with terminal states masked: is the naive failure the missing mask?",
        "soft_divergence",
    ),
    Variant(
        "target-only",
        ARTICLE_NAIVE.replace(target_network="hard", target_sync_period=100),
        "Example 1 plus a target network but no replay: the target network's effect alone.",
        "soft_divergence",
    ),
    Variant(
        "replay-target-double",
        ARTICLE_TARGET.replace(double_q=True),
        "Example 3 with double Q-learning targets: does decoupling selection from evaluation help?",
        "converge",
    ),
    Variant(
        "replay-target-huber-clip",
        ARTICLE_TARGET.replace(loss="huber", max_grad_norm=10.0),
        "Example 3 with Huber loss and gradient norm clipping at 10, as in the DQN paper's practice.",
        "converge",
    ),
    Variant(
        "replay-polyak",
        ARTICLE_REPLAY.replace(target_network="polyak", target_tau=0.005),
        "Example 2 plus a polyak-averaged target network (tau 0.005) instead of hard syncs.",
        "converge",
    ),
]
# Multi-step returns on example 2 (replay, no target network: where soft divergence lives), for
# the deadly-triad claim that longer returns diverge less (van Hasselt et al. 2018).
N_STEPS = (1, 3, 5)
for _n in N_STEPS[1:]:
    _VARIANTS.append(
        Variant(
            f"replay-nstep-{_n}",
            ARTICLE_REPLAY.replace(n_step=_n),
            f"Example 2 with {_n}-step returns: do longer returns diverge less without a target network?",
            None,
        )
    )
# LayerNorm instead of a target network (PQN, Gallici et al.): example 2 plus LayerNorm.
_VARIANTS.append(
    Variant(
        "replay-layernorm",
        ARTICLE_REPLAY.replace(layer_norm=True),
        "Example 2 with LayerNorm after each hidden layer: can normalisation stand in for a target network?",
        None,
    )
)
# Sweeps around example 3, one knob at a time. Sync period C (gradient updates): C = 1 copies
# after every update, which is the same as having no target network.
SYNC_PERIODS = (1, 10, 100, 1000)
for _period in SYNC_PERIODS:
    if _period != ARTICLE_TARGET.target_sync_period:
        _VARIANTS.append(
            Variant(
                f"sync-period-{_period}",
                ARTICLE_TARGET.replace(target_sync_period=_period),
                f"Example 3 with the target network synced every {_period} gradient updates.",
                None,
            )
        )
# Replay capacity (transitions); None is no replay: learn from the latest transition only.
REPLAY_CAPACITIES = (None, 100, 1_000, 10_000, 50_000)
for _capacity in REPLAY_CAPACITIES:
    if _capacity == ARTICLE_TARGET.replay_capacity:
        continue
    if _capacity is None:
        _config = ARTICLE_TARGET.replace(replay_capacity=None, batch_size=1, learning_starts=1)
        _summary = "Example 3 without replay: target network, latest transition only."
    else:
        _config = ARTICLE_TARGET.replace(replay_capacity=_capacity)
        _summary = f"Example 3 with a replay capacity of {_capacity:,} transitions."
    _VARIANTS.append(Variant(f"capacity-{_capacity or 'none'}", _config, _summary, None))


# The 2^4 factorial over the four switches that separate the article's examples. Each knob has
# the level of example 1 (off) and of example 3 (on); everything else is as in the article presets.
FACTORIAL_KNOBS = ("terminal_masking", "time_limit_as_terminal", "replay", "target_network")
FACTORIAL_LABELS = {
    "terminal_masking": "mask terminal states",
    "time_limit_as_terminal": "treat the time limit as terminal (old-gym done)",
    "replay": "replay (batch 64 of 10,000)",
    "target_network": "target network (sync every 100 updates)",
}


def factorial_config(mask: bool, time_limit_terminal: bool, replay: bool, target: bool) -> AgentConfig:
    """The factorial cell with these switches; (False, False, False, False) is example 1 and
    (True, True, True, True) example 3."""
    config = ARTICLE_NAIVE.replace(terminal_masking=mask, bootstrap_on_truncation=not time_limit_terminal)
    if replay:
        config = config.replace(replay_capacity=10_000, batch_size=64, learning_starts=64)
    if target:
        config = config.replace(target_network="hard", target_sync_period=100)
    return config


def factorial_cells() -> list[tuple[tuple[bool, ...], AgentConfig]]:
    """All 16 cells as ((mask, time limit terminal, replay, target), config), in binary order."""
    cells = []
    for index in range(16):
        levels = tuple(bool(index >> (3 - bit) & 1) for bit in range(4))
        cells.append((levels, factorial_config(*levels)))
    return cells


def _cell_name(levels: tuple[bool, ...]) -> str:
    return "cell-" + "-".join(f"{letter}{int(on)}" for letter, on in zip("mdrt", levels))


_NAMED = {v.config: v.name for v in _VARIANTS}
FACTORIAL_NAMES: dict[tuple[bool, ...], str] = {}
for _levels, _config in factorial_cells():
    # A cell that is already a named variant (the article's examples, naive-masked, ...) keeps
    # its name, so it is trained once; the others are named by their switches.
    if _config not in _NAMED:
        _VARIANTS.append(
            Variant(
                _cell_name(_levels),
                _config,
                "Factorial cell: "
                + ", ".join(f"{FACTORIAL_LABELS[k]} {'on' if on else 'off'}" for k, on in zip(FACTORIAL_KNOBS, _levels))
                + ".",
                None,
            )
        )
        _NAMED[_config] = _VARIANTS[-1].name
    FACTORIAL_NAMES[_levels] = _NAMED[_config]

# The bug catalogue's variants (agents/catalogue/bugs.py): each bug injected into its twin. A bug whose
# injected config is already a variant (example 1's unmasked terminals, old-gym done) reuses it.
_VARIANTS.append(
    Variant(
        "article-target-decay",
        ARTICLE_TARGET.replace(epsilon_start=1.0, epsilon_end=0.05, epsilon_decay_steps=10_000),
        "Example 3 with exploration decaying from 1 to 0.05 over 10,000 steps: the twin of the epsilon bug.",
        None,
    )
)
_BY_NAME = {v.name: v for v in _VARIANTS}
BUG_VARIANTS: dict[str, str] = {}
for _bug in CATALOGUE:
    _config = _bug.inject(_BY_NAME[_bug.twin].config)
    if _config in _NAMED:
        BUG_VARIANTS[_bug.name] = _NAMED[_config]
        continue
    _VARIANTS.append(Variant(_bug.variant, _config, f"Bug injected into {_bug.twin}: {_bug.what}", None))
    BUG_VARIANTS[_bug.name] = _bug.variant

VARIANTS: dict[str, Variant] = {v.name: v for v in _VARIANTS}


def factorial_variant(mask: bool, time_limit_terminal: bool, replay: bool, target: bool) -> str:
    """Name of the factorial cell with these switches (m = mask, d = old-gym done, r = replay,
    t = target network; 1 = example 3's level)."""
    return FACTORIAL_NAMES[(mask, time_limit_terminal, replay, target)]


def sync_period_variant(period: int) -> str:
    """Name of the variant of the sync-period sweep with period C."""
    return "article-target" if period == ARTICLE_TARGET.target_sync_period else f"sync-period-{period}"


def capacity_variant(capacity: int | None) -> str:
    """Name of the variant of the replay-capacity sweep with this capacity (None: no replay)."""
    return "article-target" if capacity == ARTICLE_TARGET.replay_capacity else f"capacity-{capacity or 'none'}"


def n_step_variant(n: int) -> str:
    """Name of the variant of the n-step sweep on example 2 (n = 1 is example 2 itself)."""
    return "article-replay" if n == 1 else f"replay-nstep-{n}"


def get_variant(name: str) -> Variant:
    """The preset called `name`; an unknown name raises an error listing the known ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ConfigError(f"variant={name!r} is invalid: known variants are {', '.join(VARIANTS)}") from None
