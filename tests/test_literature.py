"""Claims from the literature (ablations/claims/literature.py) on synthetic factorial cells whose
answer is known: each claim is supported where the data say so and refuted where they say
the opposite."""

import numpy as np
import pandas as pd
import pytest

from ablations.claims.literature import LITERATURE, N_STEP_VARIANTS, TIME_LIMIT, full_agent_removal_weights
from ablations.claims.procedure import evaluate_family
from agents.catalogue.presets import FACTORIAL_KNOBS, N_STEPS, factorial_variant
from reports.analysis import factorial, stats

SEEDS = 20
MASK, REPLAY, TARGET = (FACTORIAL_KNOBS.index(k) for k in ("terminal_masking", "replay", "target_network"))


def cells_with(
    late_return, soft_diverged=lambda levels: False, seed=0, n_step_slope=0.0, layer_norm_shift=0.0, double_q_gain=0.0
):
    """Per-seed summaries of the 16 cells: late return (and the AUC proxy mean_return) with
    mean late_return(levels) and unit noise; soft divergence as given. The n-step sweep's late
    return rises by n_step_slope per step of n, its late max|Q| falls by as much."""
    rng = np.random.default_rng(seed)
    summaries = {}
    for levels in factorial.cells(len(FACTORIAL_KNOBS)):
        values = late_return(levels) + rng.normal(0.0, 1.0, SEEDS)
        frame = pd.DataFrame(
            {
                "late_return": values,
                "mean_return": values / 2,
                "soft_diverged": [soft_diverged(levels)] * SEEDS,
                "late_max_abs_q": 100.0 - values,
            }
        )
        frame.attrs.update(env_id="CartPole-v1", success_threshold=250.0)
        summaries[factorial_variant(*levels)] = frame
    # LayerNorm: its late return follows example 3 (a cell) shifted; it soft-diverges if shifted down.
    target = summaries["article-target"]
    summaries["replay-layernorm"] = target.assign(
        late_return=target["late_return"] + layer_norm_shift, soft_diverged=layer_norm_shift < 0
    )
    summaries["replay-layernorm"].attrs.update(target.attrs)
    # Overestimation: example 3's is 5 (+ noise); double Q's is 5 - double_q_gain.
    for name, level in (("article-target", 5.0), ("replay-target-double", 5.0 - double_q_gain)):
        frame = summaries.get(name, pd.DataFrame(index=range(SEEDS)))
        summaries[name] = frame.assign(late_overestimation=level + rng.normal(0.0, 1.0, SEEDS))
        summaries[name].attrs.update(env_id="CartPole-v1", success_threshold=250.0)
    # n = 1 is example 2, a cell; n = 3 and 5 step away from its mean.
    base = summaries[N_STEP_VARIANTS[0]]["late_return"].mean()
    for n, name in zip(N_STEPS[1:], N_STEP_VARIANTS[1:]):
        values = base + n_step_slope * (n - 1) + rng.normal(0.0, 1.0, SEEDS)
        summaries[name] = pd.DataFrame({"late_return": values, "late_max_abs_q": 100.0 - values})
    return summaries


def settle(summaries):
    return evaluate_family(list(LITERATURE.values()), lambda names, count: summaries, [SEEDS])


def test_the_removal_contrast_is_replay_only_minus_target_only_with_masking():
    weights = full_agent_removal_weights()
    cells = factorial.cells(len(FACTORIAL_KNOBS))
    assert weights.sum() == 0 and np.abs(weights).sum() == 2
    for w, levels in zip(weights, cells):
        if w > 0:
            assert levels[MASK] and levels[REPLAY] and not levels[TARGET]
        if w < 0:
            assert levels[MASK] and levels[TARGET] and not levels[REPLAY]


def test_replay_mattering_more_and_bootstrapping_helping_are_supported():
    # Replay is worth 5, the target network 1, old-gym done costs 2 and makes half the cells diverge.
    summaries = cells_with(
        lambda lv: 5.0 * lv[REPLAY] + 1.0 * lv[TARGET] - 2.0 * lv[TIME_LIMIT],
        soft_diverged=lambda lv: lv[TIME_LIMIT] and lv[MASK] or (lv[REPLAY] and not lv[TARGET]),
        n_step_slope=1.0,
        layer_norm_shift=0.0,
        double_q_gain=3.0,
    )
    settled = settle(summaries)
    assert {k: s.verdict for k, s in settled.items()} == dict.fromkeys(LITERATURE, stats.SUPPORTED)
    assert settled["mnih-replay-matters-more-late-return"].evidence.verdict.effect_size == pytest.approx(4.0, abs=0.5)


def test_the_opposite_data_refute_them():
    summaries = cells_with(
        lambda lv: 1.0 * lv[REPLAY] + 5.0 * lv[TARGET] + 2.0 * lv[TIME_LIMIT],
        soft_diverged=lambda lv: not lv[TIME_LIMIT] and lv[MASK] or lv[TARGET],
        n_step_slope=-1.0,
        layer_norm_shift=-100.0,
        double_q_gain=-3.0,
    )
    settled = settle(summaries)
    assert {k: s.verdict for k, s in settled.items()} == dict.fromkeys(LITERATURE, stats.REFUTED)
