"""The catalogue of DQN bugs: each an explicit config switch, where it is seen in real code, and
the symptom it is declared to cause (before any of its runs), as changes of per-seed diagnostics.

A bug is paired with its bug-free *twin*, the variant it is injected into, chosen where the bug
bites (a stale target needs a target network; skipping the exploration decay needs a decay).
The ablation suite tests each declared symptom against the twin (`pytest ablations -m bugs`) and
measures how well the signatures recognise the bugs (reports/analysis/recognition.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.config import AgentConfig

# Signature directions: the diagnostic rises (+1) or falls (-1) with the bug, against its twin.
UP, DOWN = 1, -1
# The per-seed diagnostics signatures are made of (reports/metrics.per_seed columns).
FEATURES = (
    "late_return",
    "late_max_abs_q",
    "late_target_drift",
    "late_td_error_var_relative",
    "late_overestimation",
    "late_grad_norm",
    "early_epsilon",
)


@dataclass(frozen=True)
class Bug:
    """One injectable bug: the config change that injects it, into which twin, and its symptom."""

    name: str
    changes: tuple[tuple[str, object], ...]  # the config fields the bug sets
    twin: str  # the bug-free variant it is injected into
    what: str
    seen_in: str  # where it occurs in real code (an issue thread or the implementation)
    symptom: str
    # The declared symptom: diagnostic -> direction; the first is the one tested for a verdict.
    signature: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        for feature, direction in self.signature:
            if feature not in FEATURES or direction not in (UP, DOWN):
                raise ValueError(f"signature ({feature!r}, {direction!r}) of bug {self.name!r} is invalid")

    @property
    def variant(self) -> str:
        return f"bug-{self.name}"

    def inject(self, config: AgentConfig) -> AgentConfig:
        return config.replace(**dict(self.changes))

    @property
    def primary(self) -> tuple[str, int]:
        return self.signature[0]


CATALOGUE: tuple[Bug, ...] = (
    Bug(
        "unmasked-terminals",
        (("terminal_masking", False),),
        "article-target",
        "The target bootstraps past terminal states: y = r + gamma max Q(s') even where the episode ended.",
        "the article's example 1: its target ignores done",
        "values climb past what any return allows, and learning suffers",
        (("late_max_abs_q", UP), ("late_return", DOWN)),
    ),
    Bug(
        "time-limit-terminal",
        (("bootstrap_on_truncation", False),),
        "cell-m1-d0-r1-t1",
        "The time limit is treated as terminal (old-gym done): no bootstrap at truncation.",
        "old gym's single done flag (gymnasium split it into terminated and truncated); Pardo et al. 2018",
        "values stay lower: the states near the time limit look terminal",
        (("late_max_abs_q", DOWN), ("late_return", DOWN)),
    ),
    Bug(
        "target-gradient",
        (("bug_target_gradient", True),),
        "article-replay",
        "The TD target is not detached: the gradient also flows through max Q(s') (residual gradient).",
        "philtabor/Deep-Q-Learning-Paper-To-Code#16 and #9; datawhalechina/easy-rl#117",
        "learning is slowed: the update also drags Q(s') toward Q(s)",
        (("late_return", DOWN), ("late_max_abs_q", DOWN)),
    ),
    Bug(
        "stale-target",
        (("bug_stale_target", True),),
        "article-target",
        "The target network keeps its first copy: it is never synced again.",
        "thesouther/MARL#8 (the target loads its own state_dict instead of the online network's)",
        "the targets never move, values stay near the first network's, and the policy is myopic",
        (("late_target_drift", DOWN), ("late_max_abs_q", DOWN), ("late_return", DOWN)),
    ),
    Bug(
        "greedy-gather",
        (("bug_greedy_gather", True),),
        "article-target",
        "Q(s, a) is read at the greedy action instead of the action taken.",
        "sherjilozair/dqn#4 and simoninithomas/Deep_reinforcement_learning_Course#68 (Q(s, a) indexed wrongly)",
        "the taken actions' values are never corrected: the policy does not improve",
        (("late_return", DOWN), ("late_overestimation", UP)),
    ),
    Bug(
        "no-zero-grad",
        (("bug_no_zero_grad", True),),
        "article-target",
        "Gradients are never zeroed: every update adds its gradient to all earlier ones.",
        "pytorch/pytorch#47175 (optimizer.zero_grad forgotten); IDEA-Research/DN-DETR#19",
        "the applied gradient is a running sum: its norm grows and learning stalls",
        (("late_grad_norm", UP), ("late_return", DOWN)),
    ),
    Bug(
        "epsilon-at-end",
        (("bug_epsilon_at_end", True),),
        "article-target-decay",
        "Exploration starts at its final value: the decay from epsilon_start is skipped.",
        "Lightning-AI/pytorch-lightning#9620 (operator precedence locks epsilon to eps_end)",
        "little exploration early in training",
        (("early_epsilon", DOWN), ("late_return", DOWN)),
    ),
    Bug(
        "terminal-shift",
        (("bug_terminal_shift", True),),
        "article-target",
        "Each transition is stored with the previous step's terminal flag.",
        "DLR-RM/stable-baselines3#105 (the current dones collected instead of the last ones)",
        "real terminal transitions bootstrap and the first of each episode does not: values climb",
        (("late_max_abs_q", UP), ("late_return", DOWN)),
    ),
)
BUGS = {bug.name: bug for bug in CATALOGUE}


def describe_catalogue() -> list[str]:
    """`dqn-ablations bugs`: one block per bug."""
    lines = []
    for bug in CATALOGUE:
        switch = ", ".join(f"{field}={value!r}" for field, value in bug.changes)
        signature = ", ".join(f"{feature} {'up' if d == UP else 'down'}" for feature, d in bug.signature)
        lines += [
            f"{bug.name}  ({switch}, injected into {bug.twin})",
            f"    what:    {bug.what}",
            f"    seen in: {bug.seen_in}",
            f"    symptom: {bug.symptom} [{signature}]",
        ]
    return lines
