"""The engine's fast path (agents/fastpath.py): seeds independent of their batch, close to the exact path."""

import numpy as np
import pandas as pd
import pytest
import torch

from agents.catalogue.presets import get_variant
from agents.engine import train, train_family
from agents.engine.fastpath import matmul
from agents.engine.networks import MLPParams, init_params
from agents.results import RunResult
from tests.test_engine import BURST_FAMILY, REPLAY_FAMILY

SHORT = dict(total_env_steps=600, eval_period=200, eval_episodes=2)


def run(config, seeds, path="fast", **changes):
    return train(config.replace(**{**SHORT, **changes}), seeds, trace=True, path=path)


def per_seed(record, seed):
    frame = pd.DataFrame(record.checkpoints)
    return frame[frame["seed"] == seed].drop(columns="seed").reset_index(drop=True)


def assert_seed_equal(a, b, seed):
    i, j = a.seeds.index(seed), b.seeds.index(seed)
    np.testing.assert_array_equal(a.trace_actions[:, i], b.trace_actions[:, j])
    np.testing.assert_array_equal(a.trace_losses[:, i], b.trace_losses[:, j])
    pd.testing.assert_frame_equal(per_seed(a, seed), per_seed(b, seed))


# --- a seed's result does not depend on its neighbours or on the batch width -------------------


@pytest.mark.parametrize(
    "config",
    [
        get_variant("article-target").config,
        get_variant("article-naive").config,
        # Widths whose stacked slices do not start on 64-byte boundaries: the per-seed fallback.
        get_variant("article-target").config.replace(hidden_sizes=(37, 19), batch_size=50, learning_starts=50),
        get_variant("article-target").config.replace(layer_norm=True),
    ],
    ids=["article-target", "article-naive", "odd-shapes", "layer-norm"],
)
def test_a_seed_is_bit_identical_alone_and_in_batches_of_any_width(config):
    alone = run(config, [7])
    for seeds in ([0, 7], list(range(3, 20))):  # widths 2 and 17, seed 7 last and in the middle
        assert_seed_equal(run(config, seeds), alone, 7)


def test_batched_products_give_a_seed_the_same_bits_at_any_batch_width():
    """The fast matmul on the network's shapes (both orientations, naive and gemm kernels):
    a seed's slice of a K = 64 product equals its K = 1 product."""
    gen = torch.Generator().manual_seed(0)
    for m, c, n in [(64, 4, 64), (64, 64, 64), (64, 64, 2), (2, 64, 64), (64, 64, 4), (1, 4, 64), (1, 64, 2)]:
        a, b, bias = torch.randn(64, m, c, generator=gen), torch.randn(64, c, n, generator=gen), torch.randn(64, n)
        together = matmul(a, b, bias)
        for k in (0, 1, 31, 63):
            assert torch.equal(together[k], matmul(a[k : k + 1].clone(), b[k : k + 1].clone(), bias[k : k + 1])[0])


@pytest.mark.parametrize(
    "family", [REPLAY_FAMILY, BURST_FAMILY], ids=["replay", "bursts"]
)
def test_each_member_of_a_mixed_family_on_the_fast_path_equals_its_solo_fast_run(family):
    seeds = [5, 6]
    configs = {name: config.replace(**SHORT) for name, config in family.items()}
    records = train_family([(config, seeds) for config in configs.values()], trace=True, path="fast")
    for (name, config), together in zip(configs.items(), records):
        alone = train(config, seeds, trace=True, path="fast")
        np.testing.assert_array_equal(together.trace_actions, alone.trace_actions, err_msg=name)
        np.testing.assert_array_equal(together.trace_losses, alone.trace_losses, err_msg=name)
        pd.testing.assert_frame_equal(pd.DataFrame(together.checkpoints), pd.DataFrame(alone.checkpoints), obj=name)


# --- the fast path computes the exact path's DQN up to float rounding ------------------------------

# Stated before looking: over the first 200 updates of a short run every seed's loss is within
# 1e-4 relative (1e-6 absolute) of the exact path's, its first 200 actions are the same, and the
# checkpoint Q-values (max |Q|, mean Q on the probe states) within 1e-3 relative.
AGREEING_UPDATES, LOSS_RTOL, AGREEING_ACTIONS, Q_RTOL = 200, 1e-4, 200, 1e-3


@pytest.mark.parametrize("variant", ["article-target", "replay-target-double", "replay-target-huber-clip"])
def test_the_fast_path_agrees_with_the_exact_path_within_float_tolerance(variant):
    config, seeds = get_variant(variant).config, [0, 1, 2, 3]
    exact, fast = run(config, seeds, path="exact"), run(config, seeds, path="fast")
    np.testing.assert_allclose(
        fast.trace_losses[:AGREEING_UPDATES], exact.trace_losses[:AGREEING_UPDATES], rtol=LOSS_RTOL, atol=1e-6
    )
    np.testing.assert_array_equal(fast.trace_actions[:AGREEING_ACTIONS], exact.trace_actions[:AGREEING_ACTIONS])
    first = {name: pd.DataFrame(r.checkpoints).iloc[: len(seeds)] for name, r in (("exact", exact), ("fast", fast))}
    for column in ("max_abs_q", "mean_q"):
        np.testing.assert_allclose(first["fast"][column], first["exact"][column], rtol=Q_RTOL)
    # Not bit-identical: the paths really run different kernels.
    assert not np.array_equal(fast.trace_losses, exact.trace_losses)


# --- the path is an execution option, validated and recorded -----------------------------------------


def test_an_unknown_path_is_refused_by_name():
    with pytest.raises(ValueError, match="path='turbo' is invalid: must be one of exact, fast"):
        train(get_variant("article-target").config.replace(total_env_steps=10), [0], path="turbo")


def test_the_path_is_recorded_in_the_run_metadata():
    config = get_variant("article-target").config.replace(total_env_steps=80, eval_episodes=0, eval_period=80)
    for path in ("exact", "fast"):
        record = train(config, [0], path=path)
        assert record.path == path
        assert RunResult.from_record("article-target", record).meta["path"] == path


def test_the_target_network_runs_the_fast_kernels_too():
    params = init_params([torch.Generator().manual_seed(0)], [4, 8, 2], torch.device("cpu"))
    assert params.clone().kernels is None
    fast = MLPParams(params.weights, params.biases, kernels=type("K", (), {}))
    assert fast.clone().kernels is fast.kernels


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_fast_path_trains_on_a_cuda_device():
    config = get_variant("article-target").config.replace(device="cuda")
    record = run(config, list(range(8)), total_env_steps=300, eval_period=300)
    assert np.isfinite(record.trace_losses).all()
