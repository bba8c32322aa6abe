"""The engine's compiled path (agents/engine/compiled.py): seeds independent of their batch, close to
the exact path, graphs cached in a user folder. The first run compiles (tens of seconds per graph);
later runs load the graphs from the cache."""

import numpy as np
import pandas as pd
import pytest
import torch

from agents.catalogue.presets import get_variant
from agents.engine import train, train_family
from agents.engine.compiled import CACHE_ENV, compile_cache_dir, compiles
from tests.test_fast_path import AGREEING_ACTIONS, AGREEING_UPDATES, LOSS_RTOL, Q_RTOL, SHORT, assert_seed_equal

torch.set_num_threads(1)


def run(config, seeds, path="compiled", **changes):
    return train(config.replace(**{**SHORT, **changes}), seeds, trace=True, path=path)


# --- a seed's result does not depend on its neighbours or on the batch width -------------------


@pytest.mark.parametrize(
    "config",
    [get_variant("article-target").config, get_variant("article-target").config.replace(layer_norm=True)],
    ids=["article-target", "layer-norm"],
)
def test_a_seed_is_bit_identical_alone_and_in_batches_of_any_width(config):
    alone = run(config, [7])
    assert alone.compile_s > 0  # the compiled update really ran
    for seeds in ([0, 7], list(range(3, 20))):  # widths 2 and 17, seed 7 last and in the middle
        assert_seed_equal(run(config, seeds), alone, 7)


def test_each_member_of_a_mixed_family_equals_its_solo_compiled_run():
    """Knobs that differ between members are graph inputs with the seed axis first."""
    members = {
        "article-target": get_variant("article-target").config.replace(**SHORT),
        "replay-target-double": get_variant("replay-target-double").config.replace(**SHORT),
    }
    seeds = [5, 6]
    records = train_family([(config, seeds) for config in members.values()], trace=True, path="compiled")
    for (name, config), together in zip(members.items(), records):
        alone = train(config, seeds, trace=True, path="compiled")
        np.testing.assert_array_equal(together.trace_actions, alone.trace_actions, err_msg=name)
        np.testing.assert_array_equal(together.trace_losses, alone.trace_losses, err_msg=name)
        pd.testing.assert_frame_equal(pd.DataFrame(together.checkpoints), pd.DataFrame(alone.checkpoints), obj=name)


# --- the compiled path computes the exact path's DQN up to float rounding ---------------------------

# The fast path's tolerances (tests/test_fast_path.py), fixed there before either path was run.


@pytest.mark.parametrize("variant", ["article-target", "replay-target-double", "replay-target-huber-clip"])
def test_the_compiled_path_agrees_with_the_exact_path_within_float_tolerance(variant):
    config, seeds = get_variant(variant).config, [0, 1, 2, 3]
    exact, compiled = run(config, seeds, path="exact"), run(config, seeds, path="compiled")
    np.testing.assert_allclose(
        compiled.trace_losses[:AGREEING_UPDATES], exact.trace_losses[:AGREEING_UPDATES], rtol=LOSS_RTOL, atol=1e-6
    )
    np.testing.assert_array_equal(compiled.trace_actions[:AGREEING_ACTIONS], exact.trace_actions[:AGREEING_ACTIONS])
    first = {name: pd.DataFrame(r.checkpoints).iloc[: len(seeds)] for name, r in (("exact", exact), ("c", compiled))}
    for column in ("max_abs_q", "mean_q"):
        np.testing.assert_allclose(first["c"][column], first["exact"][column], rtol=Q_RTOL)


# --- which runs compile, and where the graphs are kept ---------------------------------------------


def test_runs_with_an_update_bug_or_unaligned_widths_keep_the_fast_update():
    config = get_variant("article-target").config
    assert compiles([config], 4, 2)
    assert not compiles([config, config.replace(bug_greedy_gather=True)], 4, 2)
    assert not compiles([config.replace(hidden_sizes=(37, 19), batch_size=50, learning_starts=50)], 4, 2)


def test_a_run_that_cannot_compile_still_trains_on_the_fast_kernels():
    config = get_variant("article-target").config.replace(hidden_sizes=(37, 19), batch_size=50, learning_starts=50)
    record = run(config, [0], total_env_steps=120, eval_period=120)
    assert record.compile_s == 0.0 and record.path == "compiled"
    assert np.isfinite(record.trace_losses).all()


def test_the_compile_cache_lives_in_a_user_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "graphs"))
    assert compile_cache_dir() == tmp_path / "graphs"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache_dir() == tmp_path / "dqn-ablations" / "torch-compile"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_compiled_path_trains_on_a_cuda_device():
    config = get_variant("article-target").config.replace(device="cuda")
    record = run(config, list(range(8)), total_env_steps=300, eval_period=300)
    assert np.isfinite(record.trace_losses).all()


def test_a_process_may_compile_a_graph_for_many_knob_sets():
    # One graph per set of knobs that are Python values: a diagnosis worker down the ladder
    # compiles more than dynamo's default 8 per function, and fullgraph raises past the limit.
    from agents.engine.compiled import configure_compiler

    configure_compiler()
    scaled = torch.compile(lambda x, knob: x * len(knob), fullgraph=True)
    x = torch.ones(3)
    for size in range(12):  # a string is always a static value: one graph each
        assert scaled(x, "k" * size).sum().item() == 3 * size


def test_the_compile_trace_stays_out_of_captured_logs_unless_torch_trace_asks(monkeypatch):
    # pytest's log capture gives torch's trace logger handlers, so every compile would print its
    # trace (hundreds of DEBUG lines) in a failing test's report, a diagnosis's included.
    import logging

    from agents.engine.compiled import TRACE_LOGGER, configure_compiler

    trace = logging.getLogger(TRACE_LOGGER)
    monkeypatch.setattr(trace, "level", logging.DEBUG)  # torch's own setting; restored after
    monkeypatch.setenv("TORCH_TRACE", "/tmp/wanted")
    configure_compiler()
    assert trace.isEnabledFor(logging.DEBUG)
    monkeypatch.delenv("TORCH_TRACE")
    configure_compiler()
    assert not trace.isEnabledFor(logging.DEBUG)
