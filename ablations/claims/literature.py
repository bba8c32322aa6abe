"""Claims from the literature, checked on the factorial cells at a scale anyone can rerun.

They form their own family (one paper's or one result's claims are a question apart from the
article's), settled by the same procedure as the article's claims (ablations/claims/article.py:
Holm over both directions of every claim, seeds on demand). Each claim carries its citation
and the paper's own statement, which the report's Literature section shows beside our figure.
"""

from __future__ import annotations

import numpy as np

from ablations.claims.article import ALL_CELLS, MASK, REPLAY, TARGET
from ablations.claims.procedure import Claim, Evidence, Summaries
from agents.catalogue.presets import FACTORIAL_KNOBS, N_STEPS, n_step_variant
from reports.analysis import factorial, stats
from reports.analysis.effects import contrast_evidence, knob_strata, stratified_effect

PARDO_SETTING = "their own tasks and agents"
VAN_HASSELT = (
    "van Hasselt, Doron, Strub, Hessel, Sonnerat & Modayil (2018), Deep Reinforcement Learning and the Deadly "
    "Triad, arXiv:1812.02648, section 4 (multi-step returns)"
)
VAN_HASSELT_SETTING = "Atari 2600 games, many DQN variants per game"
GALLICI = (
    "Gallici, Fellows, Ellis, Pou, Masmitja, Foerster & Martin (2024), Simplifying Deep Temporal Difference "
    "Learning (PQN), arXiv:2407.04811; Lyle et al. (2024), Normalization and effective learning rates in "
    "reinforcement learning"
)
GALLICI_SETTING = "their own agents (PQN: LayerNorm, no replay buffer and no target network, vectorised envs)"
# Non-inferiority margin of "LayerNorm is as good as a target network": 10% of the env's success
# threshold (25 on CartPole-v1), fixed before any LayerNorm run.
NON_INFERIORITY_SHARE = 0.1
VAN_HASSELT_2016 = (
    "van Hasselt, Guez & Silver (2016), Deep Reinforcement Learning with Double Q-learning, AAAI, "
    "figure 3 (value estimates against the true discounted return)"
)
VAN_HASSELT_2016_SETTING = "Atari 2600 games, DQN's network and schedule, value estimates on the policy's states"
MNIH_SETTING = "Atari 2600 games, a convolutional DQN trained on millions of frames"
TIME_LIMIT = FACTORIAL_KNOBS.index("time_limit_as_terminal")
PARDO = (
    "Pardo, Tavakoli, Levdik & Kormushev (2018), Time Limits in Reinforcement Learning, ICML, "
    "section 3 (partial-episode bootstrapping)"
)
MNIH = (
    "Mnih et al. (2015), Human-level control through deep reinforcement learning, Nature 518, "
    "Extended Data Table 3"
)


def _time_limit_bootstrapping(column: str, higher_is_better: bool):
    """Bootstrapping at the time limit (old-gym done off) against treating it as terminal (on),
    every other switch held fixed: 8 strata."""

    def evaluate(s: Summaries, alpha: float) -> Evidence:
        pairs = knob_strata(TIME_LIMIT)  # (time limit terminal, bootstrapping) per stratum
        # "Better with bootstrapping" is "lower with the time limit as terminal" for a
        # higher-is-better column, and "higher with it" for a lower-is-better one.
        verdict, per_stratum = stratified_effect(s, pairs, column, not higher_is_better, alpha)
        means = {name: float(np.mean(s[name][column].to_numpy(dtype=float))) for pair in pairs for name in pair}
        return Evidence(verdict, {"per_stratum": per_stratum, "mean_per_cell": means})

    return evaluate


def full_agent_removal_weights() -> np.ndarray:
    """(removing the target network) - (removing replay) from the full agent, as a contrast over
    the 16 cells: with terminal masking on and averaged over old-gym done, the mean of the
    replay-only cells minus the mean of the target-only cells (> 0: removing replay hurts more)."""
    cells = factorial.cells(len(FACTORIAL_KNOBS))
    weights = np.zeros(len(cells))
    for index, levels in enumerate(cells):
        if not levels[MASK]:
            continue
        if levels[REPLAY] and not levels[TARGET]:
            weights[index] = 0.5
        elif levels[TARGET] and not levels[REPLAY]:
            weights[index] = -0.5
    return weights


def _mnih_ordering(column: str):
    def evaluate(s: Summaries, alpha: float) -> Evidence:
        statistic = f"{column.replace('_', ' ')}: (no target network) - (no replay)"
        verdict = contrast_evidence(s, column, full_agent_removal_weights(), statistic, alpha)
        return Evidence(verdict)

    return evaluate


DOUBLE_Q_VARIANTS = ("article-target", "replay-target-double")
N_STEP_VARIANTS = tuple(n_step_variant(n) for n in N_STEPS)


def _n_step_trend(column: str, decreasing: bool):
    """Spearman trend of a per-seed column over n = 1, 3, 5 (one point per seed and n)."""

    def evaluate(s: Summaries, alpha: float) -> Evidence:
        n = np.concatenate([np.full(len(s[v]), steps) for steps, v in zip(N_STEPS, N_STEP_VARIANTS)])
        values = np.concatenate([s[v][column].to_numpy(dtype=float) for v in N_STEP_VARIANTS])
        verdict = stats.spearman_trend(n, values, decreasing, alpha)
        medians = {f"n={steps}": float(np.median(s[v][column])) for steps, v in zip(N_STEPS, N_STEP_VARIANTS)}
        return Evidence(verdict, {"median_per_n": medians})

    return evaluate


def _layer_norm_as_good_as_target(s: Summaries, alpha: float) -> Evidence:
    """Non-inferiority: replay + LayerNorm's late return plus the margin tends to exceed replay +
    target network's (Mann-Whitney on the shifted values); refuted when the target network's
    tends to exceed it, i.e. LayerNorm is worse by more than the margin."""
    threshold = float(s["replay-layernorm"].attrs["success_threshold"])
    margin = NON_INFERIORITY_SHARE * abs(threshold)
    shifted = s["replay-layernorm"]["late_return"].to_numpy(dtype=float) + margin
    verdict = stats.compare_greater(shifted, s["article-target"]["late_return"], alpha)
    verdict = stats.Decision(**{**verdict.as_dict(), "statistic": f"P(layernorm + {margin:g} > target)"})
    return Evidence(verdict, {"margin": margin, "iqm": _iqms(s, ("replay-layernorm", "article-target"))})


def _layer_norm_steadies_replay(s: Summaries, alpha: float) -> Evidence:
    """Replay alone soft-diverges more often than replay + LayerNorm (Fisher's exact test)."""
    alone, normed = s["article-replay"]["soft_diverged"], s["replay-layernorm"]["soft_diverged"]
    verdict = stats.compare_rates_greater(int(alone.sum()), len(alone), int(normed.sum()), len(normed), alpha)
    rates = {"article-replay": float(alone.mean()), "replay-layernorm": float(normed.mean())}
    return Evidence(verdict, {"soft_divergence_rate": rates})


def _double_q_lowers_overestimation(s: Summaries, alpha: float) -> Evidence:
    """Plain DQN's overestimation tends to exceed double DQN's, same target network (Mann-Whitney)."""
    plain, double = (s[name]["late_overestimation"].to_numpy(dtype=float) for name in DOUBLE_Q_VARIANTS)
    plain, double = plain[np.isfinite(plain)], double[np.isfinite(double)]
    verdict = stats.compare_greater(plain, double, alpha)
    medians = {name: float(np.median(v)) for name, v in zip(DOUBLE_Q_VARIANTS, (plain, double))}
    return Evidence(verdict, {"median_overestimation": medians})


def _iqms(s: Summaries, names) -> dict:
    return {name: stats.iqm(s[name]["late_return"].to_numpy(dtype=float)) for name in names}


LITERATURE: dict[str, Claim] = {
    c.key: c
    for c in (
        Claim(
            "n-step-less-soft-divergence",
            "Longer multi-step returns diverge less (no target network).",
            "late max|Q| (the soft-divergence statistic) per seed against n = 1, 3, 5 on example 2, Spearman",
            N_STEP_VARIANTS,
            _n_step_trend("late_max_abs_q", decreasing=True),
            source=VAN_HASSELT,
            setting=VAN_HASSELT_SETTING,
            paper="Longer multi-step returns reduced the occurrence of soft divergence (Q-values beyond the "
            "largest possible return).",
        ),
        Claim(
            "n-step-higher-return",
            "Longer multi-step returns learn better (no target network).",
            "late return per seed against n = 1, 3, 5 on example 2, Spearman",
            N_STEP_VARIANTS,
            _n_step_trend("late_return", decreasing=False),
            source=VAN_HASSELT,
            setting=VAN_HASSELT_SETTING,
            paper="The paper's measure is divergence; the late return checks whether less divergence also means "
            "a better policy here.",
        ),
        Claim(
            "layernorm-as-good-as-target",
            "Replay + LayerNorm without a target network learns as well as replay + a target network.",
            "late return, non-inferiority: example 2 + LayerNorm vs example 3, margin 10% of the success threshold",
            ("replay-layernorm", "article-target"),
            _layer_norm_as_good_as_target,
            source=GALLICI,
            setting=GALLICI_SETTING,
            paper="LayerNorm stabilises TD learning without a target network: PQN drops the target network "
            "and matches or beats DQN-style agents in their benchmarks.",
        ),
        Claim(
            "layernorm-steadies-replay",
            "LayerNorm makes replay without a target network more stable (less soft divergence).",
            "share of seeds in sustained soft divergence: example 2 vs example 2 + LayerNorm (Fisher)",
            ("article-replay", "replay-layernorm"),
            _layer_norm_steadies_replay,
            source=GALLICI,
            setting=GALLICI_SETTING,
            paper="Their analysis: LayerNorm with l2 regularisation makes TD learning with function approximation "
            "provably stable, removing the divergence a target network is otherwise needed against.",
        ),
        Claim(
            "double-q-lowers-overestimation",
            "Double Q-learning overestimates less than DQN with the same target network.",
            "late overestimation: max_a Q minus the discounted return obtained, on the greedy policy's states "
            "(example 3 vs example 3 + double Q)",
            DOUBLE_Q_VARIANTS,
            _double_q_lowers_overestimation,
            source=VAN_HASSELT_2016,
            setting=VAN_HASSELT_2016_SETTING,
            paper="DQN's value estimates were consistently and sometimes vastly above the true discounted "
            "return of its policy; Double DQN's were much closer to it.",
        ),
        Claim(
            "time-limit-bootstrapping-return",
            "Bootstrapping at the time limit gives a higher return than treating the time limit as terminal.",
            "late return: bootstrapping vs old-gym done, other switches held fixed (8 strata)",
            ALL_CELLS,
            _time_limit_bootstrapping("late_return", higher_is_better=True),
            source=PARDO,
            setting=PARDO_SETTING,
            paper="Time-outs treated as terminal make a state's target depend on the time left, which the agent "
            "cannot observe; bootstrapping at time-outs (partial-episode bootstrapping) learned better policies in "
            "their experiments.",
        ),
        Claim(
            "time-limit-bootstrapping-stability",
            "Bootstrapping at the time limit makes training more stable than treating the time limit as terminal.",
            "share of seeds in sustained soft divergence: bootstrapping vs old-gym done (8 strata)",
            ALL_CELLS,
            _time_limit_bootstrapping("soft_diverged", higher_is_better=False),
            source=PARDO,
            setting=PARDO_SETTING,
            paper="Time-outs treated as terminal give the same state inconsistent targets (state aliasing), a "
            "source of instability that bootstrapping at time-outs removes.",
        ),
        Claim(
            "mnih-replay-matters-more-late-return",
            "Removing replay hurts more than removing the target network (late return).",
            "late return, full agent with terminal masking: target-network-free cells minus replay-free cells, "
            "averaged over old-gym done",
            ALL_CELLS,
            _mnih_ordering("late_return"),
            source=MNIH,
            setting=MNIH_SETTING,
            paper="In 4 of the 5 games of Extended Data Table 3, DQN without replay scored lower than DQN without "
            "the target network.",
        ),
        Claim(
            "mnih-replay-matters-more-auc",
            "Removing replay hurts more than removing the target network (learning speed: area under the curve).",
            "mean greedy return over all checkpoints (the normalised area under the learning curve), as above",
            ALL_CELLS,
            _mnih_ordering("mean_return"),
            source=MNIH,
            setting=MNIH_SETTING,
            paper="The same table; the area under the learning curve checks the ordering on learning speed as "
            "well as on the final score.",
        ),
    )
}
