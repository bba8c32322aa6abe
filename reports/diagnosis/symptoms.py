"""Symptoms read from one variant's runs: named findings, each a plain sentence with its evidence.

The diagnosis shows these before the ladder. Each symptom is a property of what the runs did
(no update ran, the behaviour policy was random, the greedy policy is constant, the values
passed their bound, overflowed, collapsed, the gradients exploded), counted over seeds, with
the numbers behind it. Thresholds are fixed from the definitions, never tuned on a diagnosis.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from reports.analysis.metrics import late_checkpoints, per_seed, soft_divergence_bound

# The behaviour policy is "random" when epsilon >= this (more random actions than greedy ones),
# and "for most of training" when that holds at more than this share of the checkpoints.
RANDOM_EPSILON = 0.5
MOST_OF_TRAINING = 0.5
# A gradient norm "explodes" when its late median is this many times its first recorded median.
EXPLOSION_RATIO = 100.0
# A symptom is reported when it holds for at least this share of seeds (a majority), or for any
# seed where the symptom is a bug's signature on its own (non-finite values, no update).
MAJORITY = 0.5


@dataclass(frozen=True)
class Symptom:
    """A named finding about the runs: what it is, the sentence the report shows, its numbers."""

    name: str
    sentence: str
    seeds: int  # how many seeds show it
    of: int  # of how many
    evidence: dict

    def to_dict(self) -> dict:
        return asdict(self)


def _share(mask: pd.Series) -> tuple[int, int]:
    return int(mask.sum()), int(mask.size)


def no_update(frame: pd.DataFrame, **_) -> Symptom | None:
    final = frame.sort_values("env_step").groupby("seed").last()
    stuck = final["gradient_updates"] == 0
    if not stuck.any():
        return None
    k, n = _share(stuck)
    steps = int(final["env_step"].max())
    return Symptom(
        "no-update",
        f"No gradient update ran: {k} of {n} seeds made 0 updates in {steps:,} env steps, so the network "
        "stayed its random initialisation.",
        k,
        n,
        {"gradient_updates": final["gradient_updates"].astype(int).tolist(), "env_steps": steps},
    )


def random_behaviour(frame: pd.DataFrame, **_) -> Symptom | None:
    by_seed = frame.groupby("seed")["epsilon"]
    random_share = by_seed.apply(lambda e: float((e >= RANDOM_EPSILON).mean()))
    mostly = random_share > MOST_OF_TRAINING
    if mostly.mean() < MAJORITY or not mostly.any():
        return None
    k, n = _share(mostly)
    mean_epsilon = float(frame["epsilon"].mean())
    last_epsilon = float(frame.sort_values("env_step")["epsilon"].iloc[-1])
    return Symptom(
        "random-behaviour",
        f"The behaviour policy was random for most of training: epsilon was >= {RANDOM_EPSILON:g} at "
        f"{random_share.median():.0%} of checkpoints (mean epsilon {mean_epsilon:.2f}, last "
        f"{last_epsilon:.2f}), so the agent rarely acted on what it learned.",
        k,
        n,
        {"mean_epsilon": mean_epsilon, "share_of_checkpoints_random": float(random_share.median())},
    )


def constant_greedy_policy(frame: pd.DataFrame, **_) -> Symptom | None:
    # Every evaluation episode of a checkpoint with the same return: from fixed start-state noise
    # only a policy that ignores its input (or a trivial one) gives identical episodes every time.
    late = late_checkpoints(frame)
    if "eval_return_std" not in late or late["eval_return_std"].isna().all():
        return None
    constant = late.groupby("seed").apply(
        lambda g: bool((g["eval_return_std"] == 0).all() and g["eval_return"].nunique() == 1), include_groups=False
    )
    if constant.mean() < MAJORITY:
        return None
    k, n = _share(constant)
    returns = sorted({float(v) for v in late["eval_return"].dropna()})
    return Symptom(
        "constant-greedy-policy",
        f"The greedy policy is constant: in {k} of {n} seeds every late evaluation episode gave the same "
        f"return ({', '.join(f'{r:g}' for r in returns[:3])}), as a policy that ignores the state does.",
        k,
        n,
        {"late_returns": returns[:10]},
    )


def soft_divergence(frame: pd.DataFrame, summary: pd.DataFrame, profile, gamma: float) -> Symptom | None:
    bound = soft_divergence_bound(profile, gamma, checkpoints=frame)
    if bound is None or "soft_diverged" not in summary:
        return None
    stayed = summary["soft_diverged"] & ~summary["hard_diverged"]
    if stayed.mean() < MAJORITY:
        return None
    k, n = _share(stayed)
    late_max = float(summary.loc[stayed, "late_max_abs_q"].median())
    return Symptom(
        "soft-divergence",
        f"Q-values stayed above what any return allows: in {k} of {n} seeds the late max|Q| "
        f"(median {late_max:.3g}) stayed above the bound {bound:.3g} (max|r| / (1 - gamma) + 10%).",
        k,
        n,
        {"bound": bound, "late_max_abs_q": late_max},
    )


def hard_divergence(frame: pd.DataFrame, summary: pd.DataFrame, **_) -> Symptom | None:
    hard = summary["hard_diverged"].astype(bool)
    if not hard.any():
        return None
    k, n = _share(hard)
    steps = summary.loc[hard, "diverged_step"].dropna().astype(int)
    return Symptom(
        "hard-divergence",
        f"Values went non-finite (hard divergence) in {k} of {n} seeds, first at env step {int(steps.min()):,}.",
        k,
        n,
        {"diverged_steps": steps.tolist()},
    )


def collapse(frame: pd.DataFrame, summary: pd.DataFrame, **_) -> Symptom | None:
    if "collapsed" not in summary or summary["collapsed"].mean() < MAJORITY:
        return None
    collapsed = summary["collapsed"].astype(bool)
    k, n = _share(collapsed)
    # When: the first checkpoint after each collapsed seed's best return.
    best_at = frame[frame["seed"].isin(summary.loc[collapsed, "seed"])].sort_values("env_step")
    best_step = best_at.loc[best_at.groupby("seed")["eval_return"].idxmax(), "env_step"].astype(int)
    return Symptom(
        "learned-then-collapsed",
        f"It learned, then collapsed: {k} of {n} seeds reached their best return (median "
        f"{float(summary.loc[collapsed, 'best_return'].median()):g}) around env step {int(best_step.median()):,} "
        f"and ended at a late return of {float(summary.loc[collapsed, 'late_return'].median()):g}.",
        k,
        n,
        {"best_step": best_step.tolist()},
    )


def exploding_gradients(frame: pd.DataFrame, **_) -> Symptom | None:
    grads = frame.dropna(subset=["grad_norm"]).sort_values("env_step")
    if grads.empty:
        return None
    early = grads.groupby("seed")["grad_norm"].first()
    late = late_checkpoints(grads).groupby("seed")["grad_norm"].median()
    ratio = (late / early.replace(0, np.nan)).dropna()
    exploding = ratio >= EXPLOSION_RATIO
    if exploding.mean() < MAJORITY or not exploding.any():
        return None
    k, n = _share(exploding)
    return Symptom(
        "exploding-gradients",
        f"The gradient norm exploded: in {k} of {n} seeds its late median is {float(ratio.median()):.3g}x "
        f"its first value (>= {EXPLOSION_RATIO:g}x).",
        k,
        n,
        {"ratio": float(ratio.median())},
    )


# In the order the report lists them: the cause-like symptoms first (nothing was trained, the
# data was random), then what the values did.
SYMPTOMS = (
    no_update,
    random_behaviour,
    constant_greedy_policy,
    hard_divergence,
    soft_divergence,
    exploding_gradients,
    collapse,
)


def symptoms(checkpoints: pd.DataFrame, profile, gamma: float) -> list[Symptom]:
    """Every symptom one variant's checkpoints show (one frame of one variant, all seeds)."""
    frame = checkpoints.sort_values(["seed", "env_step"])
    summary = per_seed(frame, profile, gamma)
    found = (read(frame, summary=summary, profile=profile, gamma=gamma) for read in SYMPTOMS)
    return [symptom for symptom in found if symptom is not None]
