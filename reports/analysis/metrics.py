"""Per-seed outcome metrics from tidy checkpoint frames: one definition for tests and reports.

Every threshold here was fixed before any ablation result was looked at, and each is derived
from the environment (return bound, time limit), not tuned to make a verdict come out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agents.envprofile import EnvProfile, env_profile

# A seed's "late" performance: the mean over its last 20% of checkpoints (at least one), each
# checkpoint itself the mean of several fixed-seed greedy episodes. One snapshot swings too much.
LATE_FRACTION = 0.2
# Soft divergence: max |Q| stays above max|r| / (1 - gamma) times (1 + margin) at every late
# checkpoint (the last LATE_FRACTION of the run). No true Q-value can exceed max|r| / (1 - gamma)
# = 100 on CartPole with gamma 0.99, and a good agent's estimate sits near 99.3 (the 500-step
# return bound); the 10% margin allows the estimation noise of a converged agent. A run whose
# peak crossed the bound but that came back under it is a transient overshoot, not a
# divergence: a peak is not a state. Reports show how both move across SOFT_DIVERGENCE_MARGINS.
SOFT_DIVERGENCE_MARGIN = 0.10
SOFT_DIVERGENCE_MARGINS = (0.0, 0.05, 0.10, 0.25, 0.5, 1.0, 9.0)
# A seed "learns" when its late return reaches the env profile's success threshold
# (agents/envprofile.py: 250 on CartPole-v1, gymnasium's reward_threshold elsewhere, or the
# config file's); the profile's success_thresholds_shown are reported beside it.
# Learn-then-collapse: the best checkpoint reached the profile's collapse peak and the late
# return fell below COLLAPSE_FRACTION of that best.
COLLAPSE_FRACTION = 0.5


def as_env_profile(profile: EnvProfile | dict | str) -> EnvProfile:
    """A profile from a profile, its recorded dict, or (for results saved before) an env id."""
    if isinstance(profile, EnvProfile):
        return profile
    if isinstance(profile, dict):
        return EnvProfile.from_dict(profile)
    return env_profile(profile)


def max_abs_reward(profile, checkpoints: pd.DataFrame | None = None) -> float | None:
    """The profile's reward bound, else the largest |reward| the run saw in training."""
    profile = as_env_profile(profile)
    if profile.max_abs_reward is not None:
        return profile.max_abs_reward
    if (
        checkpoints is not None
        and "max_abs_reward_seen" in checkpoints
        and checkpoints["max_abs_reward_seen"].notna().any()
    ):
        return float(checkpoints["max_abs_reward_seen"].max())
    return None


def soft_divergence_bound(
    profile, gamma: float, margin: float = SOFT_DIVERGENCE_MARGIN, checkpoints: pd.DataFrame | None = None
) -> float | None:
    """The max |Q| above which an estimate is soft-diverged; None where no reward bound is known."""
    reward = max_abs_reward(profile, checkpoints)
    if reward is None or gamma >= 1.0:
        return None
    return reward / (1.0 - gamma) * (1.0 + margin)


def late_count(checkpoints: int) -> int:
    """How many of a run's checkpoints are late: the last LATE_FRACTION, at least the final one."""
    return max(1, int(round(checkpoints * LATE_FRACTION)))


def late_checkpoints(checkpoints: pd.DataFrame) -> pd.DataFrame:
    """Rows of the last LATE_FRACTION of each variant's checkpoints (at least the final one)."""
    steps = np.sort(checkpoints["env_step"].unique())
    return checkpoints[checkpoints["env_step"].isin(steps[-late_count(len(steps)) :])]


def per_seed(checkpoints: pd.DataFrame, profile, gamma: float) -> pd.DataFrame:
    """One row per seed of one variant: late, best and mean return, divergence and collapse."""
    if checkpoints["variant"].nunique() != 1:
        raise ValueError("per_seed takes the checkpoints of one variant")
    frame = checkpoints.sort_values(["seed", "env_step"])
    late = late_checkpoints(frame)
    grouped = frame.groupby("seed")
    out = pd.DataFrame(
        {
            "late_return": late.groupby("seed")["eval_return"].mean(),
            "best_return": grouped["eval_return"].max(),
            "mean_return": grouped["eval_return"].mean(),
            "peak_max_abs_q": grouped["max_abs_q"].max(),
            "late_max_abs_q": late.groupby("seed")["max_abs_q"].median(),
            # Lowest max |Q| over the late checkpoints: above the bound means it stayed above.
            "late_min_max_abs_q": late.groupby("seed")["max_abs_q"].min(),
            "late_td_target_var": late.groupby("seed")["td_target_var"].median(),
            "late_td_error_var": late.groupby("seed")["td_error_var"].median(),
            "late_td_error_var_relative": _late_median(late, "td_error_var_relative"),
            "late_target_drift": _late_median(late, "target_drift_per_update"),
            # Q at the greedy policy's states minus the discounted return it obtained from them.
            "late_overestimation": _late_median(late, "overestimation"),
            "late_grad_norm": _late_median(late, "grad_norm"),
            # Exploration at the first checkpoint (what the schedule gave early in training).
            "early_epsilon": grouped["epsilon"].first() if "epsilon" in frame else np.nan,
            "late_target_drift_checkpoint": _late_median(late, "target_drift_checkpoint"),
            "late_state_autocorrelation": late.groupby("seed")["state_autocorrelation"].mean(),
            "hard_diverged": grouped["diverged"].last().astype(bool),
            "diverged_step": grouped["diverged_step"].last(),
        }
    )
    # A hard-diverged seed has no policy left to evaluate: it counts at the worst return the
    # variant recorded, so it weighs as a failure without inventing a value.
    worst = frame["eval_return"].min()
    out["late_return_imputed"] = out["late_return"].isna()
    out["late_return"] = out["late_return"].fillna(worst if np.isfinite(worst) else 0.0)
    profile = as_env_profile(profile)
    bound = soft_divergence_bound(profile, gamma, checkpoints=frame)
    if bound is not None:
        # Hard-diverged seeds went through overflow: they count as soft-diverged too.
        out["soft_diverged"] = (out["late_min_max_abs_q"] > bound) | out["hard_diverged"]
        out["overshoot"] = (out["peak_max_abs_q"] > bound) & ~out["soft_diverged"]
    if profile.success_threshold is not None:
        out["success"] = out["late_return"] >= profile.success_threshold
    for shown in profile.success_thresholds_shown:
        out[f"success_{shown:g}"] = out["late_return"] >= shown
    peak = profile.collapse_peak
    if peak is not None:
        out["collapsed"] = (out["best_return"] >= peak) & (out["late_return"] < COLLAPSE_FRACTION * out["best_return"])
    return out.reset_index()



def seed_summary(run) -> pd.DataFrame:
    """per_seed outcome metrics of a run (an agents.results.RunResult: its checkpoints, env
    profile and discount): late return, divergence, collapse, ..."""
    return per_seed(run.checkpoints, run.env_profile, run.config.gamma)

def _late_median(late: pd.DataFrame, column: str) -> pd.Series:
    """Median of a column over each seed's late checkpoints (NaN where it was not recorded)."""
    if column not in late:
        return pd.Series(np.nan, index=pd.Index(sorted(late["seed"].unique()), name="seed"))
    return late.groupby("seed")[column].median()


def soft_divergence_rates(checkpoints: pd.DataFrame, profile, gamma: float) -> dict[float, tuple[int, int, int]]:
    """(sustained soft divergences, peak crossings, seeds) at every margin of
    SOFT_DIVERGENCE_MARGINS: how each definition's verdict moves with the threshold."""
    late = late_checkpoints(checkpoints).groupby("seed")["max_abs_q"].min()
    frame = checkpoints.groupby("seed").agg(peak=("max_abs_q", "max"), hard=("diverged", "last"))
    hard = frame["hard"].astype(bool)
    rates = {}
    for margin in SOFT_DIVERGENCE_MARGINS:
        bound = soft_divergence_bound(profile, gamma, margin, checkpoints)
        if bound is None:
            continue
        sustained = int(((late.reindex(frame.index) > bound) | hard).sum())
        rates[margin] = (sustained, int(((frame["peak"] > bound) | hard).sum()), len(frame))
    return rates


# What became of one seed, in the order the rules are tried: a run that overflowed is
# hard-diverged whatever else it did; one whose late return reaches the success threshold
# converged; one that reached it earlier (or the collapse peak) and fell back collapsed; one whose
# max |Q| stayed above the soft-divergence bound soft-diverged; the rest never learned.
SEED_OUTCOMES = ("converged", "learned then collapsed", "soft-diverged", "hard-diverged", "never learned")


def seed_outcomes(summary: pd.DataFrame, success_threshold: float) -> pd.Series:
    """One outcome of SEED_OUTCOMES per seed of a per_seed summary."""
    success = summary["late_return"] >= success_threshold
    collapsed = summary["best_return"] >= success_threshold
    if "collapsed" in summary:
        collapsed |= summary["collapsed"].astype(bool)
    soft = summary["soft_diverged"].astype(bool) if "soft_diverged" in summary else pd.Series(False, summary.index)
    outcome = np.select(
        [summary["hard_diverged"].astype(bool), success, collapsed, soft],
        ["hard-diverged", "converged", "learned then collapsed", "soft-diverged"],
        default="never learned",
    )
    return pd.Series(outcome, index=summary.index, name="outcome")
