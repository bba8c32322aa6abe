import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from agents.engine.replay import ReplayBuffer, UniformBlocks, uniform_indices


def fill(buffer, count, num_seeds):
    """Insert `count` transitions whose action encodes (seed, insert number)."""
    for t in range(count):
        action = torch.tensor([1000 * t + k for k in range(num_seeds)])
        obs = torch.full((num_seeds, 3), float(t))
        buffer.add(
            obs,
            action,
            torch.ones(num_seeds),
            obs + 1,
            torch.zeros(num_seeds, dtype=torch.bool),
            torch.zeros(num_seeds, dtype=torch.bool),
            t,
        )


@given(capacity=st.integers(1, 50), inserts=st.integers(0, 200), num_seeds=st.integers(1, 3))
def test_ring_buffer_size_and_overwrite_order(capacity, inserts, num_seeds):
    buffer = ReplayBuffer(num_seeds, capacity, 3, torch.device("cpu"))
    fill(buffer, inserts, num_seeds)
    assert buffer.size == min(inserts, capacity)
    assert buffer.position == inserts % capacity
    # Slot t % capacity holds the newest insert t that maps to it.
    for slot in range(buffer.size):
        newest = max(t for t in range(inserts) if t % capacity == slot)
        assert buffer.insert_step[0, slot].item() == newest
        assert buffer.action[:, slot].tolist() == [1000 * newest + k for k in range(num_seeds)]
        assert buffer.obs[0, slot, 0].item() == newest


@given(
    capacity=st.integers(1, 64),
    inserts=st.integers(1, 200),
    uniforms=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=32),
)
def test_sampling_never_reaches_an_unwritten_slot(capacity, inserts, uniforms):
    buffer = ReplayBuffer(2, capacity, 3, torch.device("cpu"))
    fill(buffer, inserts, 2)
    u = np.array([uniforms, uniforms[::-1]])
    indices = buffer.sample_indices(u)
    assert indices.min().item() >= 0 and indices.max().item() < buffer.size
    batch = buffer.gather(indices)
    # Every sampled transition was really written: its action encodes a past insert.
    assert (batch["action"] // 1000 < inserts).all()


def test_sampling_from_an_empty_buffer_is_an_error():
    buffer = ReplayBuffer(1, 10, 3, torch.device("cpu"))
    with pytest.raises(ValueError, match="empty replay buffer"):
        buffer.sample_indices(np.zeros((1, 4)))


@pytest.mark.parametrize("size", [7, 100, 1000])
def test_sampling_is_uniform_by_chi_square(size):
    rng = np.random.default_rng(123)
    indices = uniform_indices(rng.random(200 * size), size)
    counts = np.bincount(indices, minlength=size)
    assert counts.shape == (size,)
    result = stats.chisquare(counts)
    # alpha fixed at 0.001 before looking; one test per size.
    assert result.pvalue > 1e-3


def test_sampling_detects_a_biased_sampler():
    """The chi-square check above can fail: a sampler that skips the last slot is caught."""
    rng = np.random.default_rng(123)
    size = 100
    indices = uniform_indices(rng.random(200 * size), size - 1)
    assert stats.chisquare(np.bincount(indices, minlength=size)).pvalue < 1e-3


@settings(max_examples=30)
@given(width=st.integers(1, 9), block=st.integers(1, 20), draws=st.integers(1, 60), seed=st.integers(0, 2**32))
def test_block_draws_equal_one_row_at_a_time(width, block, draws, seed):
    blocks = UniformBlocks([np.random.default_rng(seed), np.random.default_rng(seed + 1)], width, block)
    singles = [np.random.default_rng(seed), np.random.default_rng(seed + 1)]
    for _ in range(draws):
        row = blocks.next()
        np.testing.assert_array_equal(row, np.stack([g.random(width) for g in singles]))


@settings(max_examples=30)
@given(
    width=st.integers(1, 5),
    block=st.integers(1, 20),
    counts=st.lists(st.integers(1, 12), min_size=1, max_size=12),
    seed=st.integers(0, 2**32),
)
def test_several_rows_at_once_equal_one_row_at_a_time(width, block, counts, seed):
    blocks = UniformBlocks([np.random.default_rng(seed), np.random.default_rng(seed + 1)], width, block)
    singles = [np.random.default_rng(seed), np.random.default_rng(seed + 1)]
    for n in counts:
        expected = np.stack([np.stack([g.random(width) for g in singles]) for _ in range(n)])
        np.testing.assert_array_equal(blocks.rows(n), expected)
