"""The engine's fused path (agents/engine/stepgraph.py): the whole env step one compiled graph; seeds
independent of their batch, close to the exact path. The first run compiles (tens of seconds)."""

import numpy as np
import pandas as pd
import pytest
import torch

from agents.catalogue.presets import get_variant
from agents.engine import loop, stepgraph, train, train_family
from agents.engine.stepgraph import chunk_length, fuses
from agents.engine.torch_envs import RESET_BLOCK
from tests.test_fast_path import AGREEING_ACTIONS, AGREEING_UPDATES, LOSS_RTOL, Q_RTOL, SHORT, assert_seed_equal

torch.set_num_threads(1)
ARTICLE_TARGET = get_variant("article-target").config


DEFAULT_CHUNKS = stepgraph.CHUNK_LENGTHS


@pytest.fixture(autouse=True)
def one_step_per_call(monkeypatch):
    """One env step per graph call but in the tests of chunks: each chunk length is a graph of
    its own to compile (minutes for the longest), and a chunk records the same as its steps one
    at a time (test_a_chunk_of_steps_equals_the_same_steps_one_at_a_time)."""
    monkeypatch.setattr(stepgraph, "CHUNK_LENGTHS", (1,))


def run(config, seeds, path="fused", **changes):
    return train(config.replace(**{**SHORT, **changes}), seeds, trace=True, path=path)


@pytest.mark.parametrize("chunks", [(1,), DEFAULT_CHUNKS], ids=["one step per call", "chunks"])
def test_a_seed_is_bit_identical_alone_and_in_batches_of_any_width(chunks, monkeypatch):
    # A lone seed trains on graphs of its own (dynamo specializes a seed axis of 1), with no
    # padding copy: they must round like the graphs every other width shares.
    monkeypatch.setattr(stepgraph, "CHUNK_LENGTHS", chunks)
    widths, fused = [], loop.train_fused
    monkeypatch.setattr(loop, "train_fused", lambda members, *a: widths.append(len(members)) or fused(members, *a))
    alone = run(ARTICLE_TARGET, [7])
    assert widths == [1], "a lone seed trains on a seed axis of 1"
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


class _Syncs:
    """A target network's sync schedule for chunk_length: hard syncs after the given update
    numbers, env-step syncs at the given clock values."""

    def __init__(self, hard=(), before=(), after=()):
        self.hard, self.before, self.after = set(hard), set(before), set(after)

    def syncs_hard(self, updates):
        return updates in self.hard

    def syncs_at_env_step(self, unit, clock):
        return clock in (self.before if unit == "env_steps" else self.after)


CHUNKED = ARTICLE_TARGET.replace(total_env_steps=1_000, eval_period=500, learning_starts=64, diagnostic_window=100)


@pytest.mark.parametrize(
    ("t", "updates", "syncs", "moving", "expected"),
    [
        (0, 0, _Syncs(), False, 1),  # before learning starts: one step without an update
        (63, 0, _Syncs(), False, 8),  # the first training step starts a chunk
        (490, 427, _Syncs(), False, 8),  # steps 491-498
        (494, 431, _Syncs(), False, 4),  # steps 495-500 end at the checkpoint: 6, rounded to 4
        (498, 435, _Syncs(), False, 2),
        (499, 436, _Syncs(), False, 1),
        (100, 37, _Syncs(hard=[40]), False, 2),  # ends after update 40 (steps 101-103): 3 -> 2
        (100, 37, _Syncs(hard=[38]), False, 1),
        (100, 37, _Syncs(before=[104]), False, 2),  # step 104's sync comes before its update
        (100, 37, _Syncs(before=[101]), False, 8),  # the host syncs before the chunk
        (100, 37, _Syncs(after=[102]), False, 2),
        (390, 327, _Syncs(), True, 8),  # moving targets: steps 391-398 are before the window
        (396, 333, _Syncs(), True, 4),  # steps 397-400; step 401 is in the window
        (400, 337, _Syncs(), True, 1),
        (996, 933, _Syncs(), False, 4),  # the run's last steps
    ],
)
def test_a_chunk_ends_where_the_host_must_act(t, updates, syncs, moving, expected):
    # CHUNKED clocks steps taken: 0-based step t is clock t + 1, and trains from clock 64.
    assert chunk_length(CHUNKED, syncs, moving, t, updates, lengths=(8, 4, 2, 1)) == expected


def _chunked_and_single(members, monkeypatch):
    """A family's records trained in chunks (the default lengths) and one step per graph call
    (an on_update hook)."""
    monkeypatch.setattr(stepgraph, "CHUNK_LENGTHS", DEFAULT_CHUNKS)
    chunked = train_family(members, trace=True, path="fused")
    single = train_family(members, trace=True, path="fused", on_update=lambda *args: None)
    for together, alone in zip(chunked, single):
        pd.testing.assert_frame_equal(pd.DataFrame(together.checkpoints), pd.DataFrame(alone.checkpoints))
        pd.testing.assert_frame_equal(pd.DataFrame(together.episodes), pd.DataFrame(alone.episodes))
    return chunked, single


def test_a_chunk_of_steps_equals_the_same_steps_one_at_a_time(monkeypatch):
    # Chunks cross reset-table refills (epsilon 1 ends an episode every ~22 steps, so each env
    # reads several blocks of 64 starts) and a divergence (a learning rate of 1e8 makes non-finite
    # losses): chunked and one step per graph call must record the same.
    explore = ARTICLE_TARGET.replace(total_env_steps=4_000, eval_period=1_000, epsilon_start=1.0, epsilon_end=1.0)
    members = [(explore, [0, 1]), (explore.replace(learning_rate=1e8), [2, 3])]
    chunked, single = _chunked_and_single(members, monkeypatch)
    lasts = pd.DataFrame(chunked[1].checkpoints).groupby("seed")["diverged_step"].max()
    assert (lasts > 0).all(), "the learning rate of 1e8 must make both seeds diverge"
    # Once a seed diverged its state is zeroed after the chunk, not at once: compare before.
    for seed, step in zip([2, 3], lasts):
        column = [2, 3].index(seed)
        np.testing.assert_array_equal(chunked[1].trace_actions[:step, column], single[1].trace_actions[:step, column])
    np.testing.assert_array_equal(chunked[0].trace_losses, single[0].trace_losses)


def test_a_chunk_applies_each_steps_target_rule_as_one_step_per_call_does(monkeypatch):
    # The bench's mixed family: targets that move on every update (no target network, Polyak,
    # double Q) make the graph apply the rule at each step of a chunk and keep the diagnostic
    # window's updates one per call, where the recorder measures their drift. A hard sync every
    # 64 updates (8 chunks) falls on a chunk's last step, where the graph copies the target.
    members = [
        (get_variant(name).config.replace(total_env_steps=2_000, eval_period=500, eval_episodes=2), [3])
        for name in ("article-replay", "article-target", "replay-polyak", "replay-target-double")
    ]
    members[1] = (members[1][0].replace(target_sync_period=64), [3])
    chunked, single = _chunked_and_single(members, monkeypatch)
    for together, alone in zip(chunked, single):
        np.testing.assert_array_equal(together.trace_losses, alone.trace_losses)


def test_restarts_read_each_envs_own_reset_draws_across_table_refills():
    # A random policy (epsilon 1) ends an episode every ~22 steps, so over 4,000 steps each env
    # reads its reset ring past several refills; its episodes must be the exact path's, whose
    # gymnasium envs draw every start from the same generators.
    config = ARTICLE_TARGET.replace(total_env_steps=4_000, eval_period=4_000, eval_episodes=0)
    config = config.replace(epsilon_start=1.0, epsilon_end=1.0)
    exact, fused = (pd.DataFrame(train(config, [0, 1], path=path).episodes) for path in ("exact", "fused"))
    assert (fused.groupby("seed").size() > 2 * RESET_BLOCK).all(), "each env must read more than two blocks of starts"
    pd.testing.assert_frame_equal(fused, exact)


def _graphs_called(config, syncs, moving):
    """The (steps, with updates) of each graph call a run of config makes, per chunk_length."""
    t, updates, called = 0, 0, set()
    while t < config.total_env_steps:
        n = chunk_length(config, syncs, moving, t, updates, DEFAULT_CHUNKS)
        trains = config.trains_at(config.clock(t))
        called.add((n, trains))
        t, updates = t + n, updates + (n if trains else 0)
    return called


@pytest.mark.parametrize("moving", [False, True])
def test_a_warm_up_of_steps_calling_every_graph_calls_every_graph(moving, monkeypatch):
    monkeypatch.setattr(stepgraph, "CHUNK_LENGTHS", DEFAULT_CHUNKS)
    config = ARTICLE_TARGET.replace(total_env_steps=50_000)
    short = config.replace(total_env_steps=stepgraph.steps_calling_every_graph(config))
    syncs = _Syncs(hard=range(100, 50_000, 100))
    assert _graphs_called(short, syncs, moving) == _graphs_called(config, syncs, moving)
