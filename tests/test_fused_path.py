"""The engine's fused path (agents/engine/stepgraph.py): the whole env step one compiled graph; seeds
independent of their batch, close to the exact path. The first run compiles (tens of seconds)."""

import numpy as np
import pandas as pd
import pytest
import torch

from agents.catalogue.presets import get_variant
from agents.engine import train, train_family
from agents.engine.stepgraph import fuses
from tests.test_fast_path import AGREEING_ACTIONS, AGREEING_UPDATES, LOSS_RTOL, Q_RTOL, SHORT, assert_seed_equal

torch.set_num_threads(1)
ARTICLE_TARGET = get_variant("article-target").config


def run(config, seeds, path="fused", **changes):
    return train(config.replace(**{**SHORT, **changes}), seeds, trace=True, path=path)


def test_a_seed_is_bit_identical_alone_and_in_batches_of_any_width():
    alone = run(ARTICLE_TARGET, [7])
    assert alone.compile_s > 0
    for seeds in ([0, 7], list(range(3, 20))):
        assert_seed_equal(run(ARTICLE_TARGET, seeds), alone, 7)


def test_each_member_of_a_mixed_family_equals_its_solo_fused_run():
    # Polyak averaging and a member without a target network (its target mirrors online) make
    # the step graph apply the target rule; the hard-target members then sync in the graph too.
    members = {
        name: get_variant(name).config.replace(**SHORT)
        for name in ("article-target", "replay-target-double", "replay-polyak", "article-replay")
    }
    seeds = [5, 6]
    records = train_family([(config, seeds) for config in members.values()], trace=True, path="fused")
    for (name, config), together in zip(members.items(), records):
        alone = train(config, seeds, trace=True, path="fused")
        np.testing.assert_array_equal(together.trace_actions, alone.trace_actions, err_msg=name)
        np.testing.assert_array_equal(together.trace_losses, alone.trace_losses, err_msg=name)
        pd.testing.assert_frame_equal(pd.DataFrame(together.checkpoints), pd.DataFrame(alone.checkpoints), obj=name)


# The fast path's tolerances (tests/test_fast_path.py), fixed there before either path was run.
@pytest.mark.parametrize(
    "variant",
    ["article-target", "replay-target-double", "replay-target-huber-clip", "replay-layernorm", "replay-polyak"],
)
def test_the_fused_path_agrees_with_the_exact_path_within_float_tolerance(variant):
    config, seeds = get_variant(variant).config, [0, 1, 2, 3]
    exact, fused = run(config, seeds, path="exact"), run(config, seeds, path="fused")
    np.testing.assert_allclose(
        fused.trace_losses[:AGREEING_UPDATES], exact.trace_losses[:AGREEING_UPDATES], rtol=LOSS_RTOL, atol=1e-6
    )
    np.testing.assert_array_equal(fused.trace_actions[:AGREEING_ACTIONS], exact.trace_actions[:AGREEING_ACTIONS])
    first = {name: pd.DataFrame(r.checkpoints).iloc[: len(seeds)] for name, r in (("exact", exact), ("f", fused))}
    for column in ("max_abs_q", "mean_q"):
        np.testing.assert_allclose(first["f"][column], first["exact"][column], rtol=Q_RTOL)


# The recorder's window, written by the step graph: over the first checkpoint the actions agree
# (AGREEING_ACTIONS), so the sampled transitions are the exact path's and their statistics must be
# equal; the update's own statistics agree within the Q tolerance.
SAMPLED_COLUMNS = ("mean_sample_age", "terminal_fraction", "state_autocorrelation")
UPDATE_COLUMNS = ("loss", "grad_norm", "td_target_mean", "td_error_var", "target_drift_between_syncs")


@pytest.mark.parametrize("variant", ["article-target", "replay-target-double"])
def test_the_window_the_step_graph_records_matches_the_exact_paths(variant):
    config, seeds = get_variant(variant).config, [0, 1, 2, 3]
    first = {
        path: pd.DataFrame(run(config, seeds, path=path).checkpoints).iloc[: len(seeds)] for path in ("exact", "fused")
    }
    assert first["exact"]["env_step"].iloc[0] <= AGREEING_ACTIONS
    for column in SAMPLED_COLUMNS:
        np.testing.assert_array_equal(first["fused"][column], first["exact"][column], err_msg=column)
    for column in UPDATE_COLUMNS:
        np.testing.assert_allclose(first["fused"][column], first["exact"][column], rtol=Q_RTOL, err_msg=column)


def test_runs_the_step_graph_does_not_cover_take_the_compiled_path():
    assert fuses([ARTICLE_TARGET, get_variant("replay-polyak").config])
    assert not fuses([ARTICLE_TARGET.replace(env_id="Acrobot-v1")])
    for other in (
        ARTICLE_TARGET.replace(bug_terminal_shift=True),
        ARTICLE_TARGET.replace(n_step=3),
        get_variant("article-naive").config,  # no replay
        get_variant("capacity-1000").config,  # another capacity beside 10,000
    ):
        assert not fuses([ARTICLE_TARGET, other])
    record = run(ARTICLE_TARGET.replace(env_id="Acrobot-v1"), [0], total_env_steps=120, eval_period=120)
    assert record.path == "fused" and np.isfinite(record.trace_losses).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_fused_path_trains_on_a_cuda_device():
    record = run(ARTICLE_TARGET.replace(device="cuda"), list(range(8)), total_env_steps=300, eval_period=300)
    assert np.isfinite(record.trace_losses).all()
