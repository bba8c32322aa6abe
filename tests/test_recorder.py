"""The recorder's chunk methods record exactly what the same steps record one at a time.

The fused path records a chunk of env steps in one pass per kind (Recorder.env_steps,
Recorder.chunk_updates_recorded, TargetNetwork.after_updates); each is checked here against a
step loop (a plain one for the episode log, the per-step methods for the rest) on small exact
cases.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.catalogue.presets import get_variant
from agents.engine.envs import env_spec
from agents.engine.family import SeedKnobs
from agents.engine.networks import init_params, layer_sizes
from agents.engine.recorder import Recorder, in_diagnostic_window
from agents.engine.targets import TargetNetwork
from agents.seeding import seed_streams

CONFIG = get_variant("article-target").config.replace(total_env_steps=400, eval_period=200)


def _recorder(members, trace: bool = False) -> Recorder:
    configs = [c for c, seeds in members for _ in seeds]
    knobs = SeedKnobs.of(configs, torch.device("cpu"))
    return Recorder(members, knobs, env_spec(CONFIG.env_id), torch.device("cpu"), trace)


def _state(recorder: Recorder) -> tuple:
    return (
        recorder.episodes,
        recorder.episode_return.tolist(),
        recorder.episode_length.tolist(),
        recorder.max_abs_reward_seen.tolist(),
        None if recorder.trace_actions is None else recorder.trace_actions.tolist(),
    )


def _logged_step_by_step(recorder: Recorder, start: int, rewards, terminated, truncated) -> None:
    """The episode log as a plain step loop keeps it (the recorder's per-step method before chunks)."""
    for i in range(len(rewards)):
        recorder.episode_return += rewards[i]
        recorder.episode_length += 1
        np.maximum(recorder.max_abs_reward_seen, np.abs(rewards[i]), out=recorder.max_abs_reward_seen)
        ended = terminated[i] | truncated[i]
        for k in np.flatnonzero(ended & recorder.alive):
            log = recorder.episodes[recorder.member_of[k]]
            values = (recorder.seeds[k], start + i + 1, recorder.episode_return[k], recorder.episode_length[k])
            for name, value in zip(("seed", "env_step", "episode_return", "episode_length"), values):
                log[name].append(value.item() if hasattr(value, "item") else value)
            log["terminated"].append(bool(terminated[i, k]))
            log["truncated"].append(bool(truncated[i, k]))
        recorder.episode_return[ended] = 0.0
        recorder.episode_length[ended] = 0


@settings(max_examples=60, deadline=None)
@given(data=st.data(), steps=st.integers(1, 12), seeds_a=st.integers(1, 3), seeds_b=st.integers(0, 3))
def test_env_steps_equal_a_step_loop(data, steps, seeds_a, seeds_b):
    """Episodes that end in a chunk (several per seed, on its last step, none at all) are logged
    in step-then-seed order with the returns a step loop sums (rewards whose sums round, so
    their order shows), for the live seeds only; env_step (one step) agrees too."""
    members = [(CONFIG, list(range(seeds_a)))] + ([(CONFIG, list(range(10, 10 + seeds_b)))] if seeds_b else [])
    num_seeds = seeds_a + seeds_b
    shape = (steps, num_seeds)
    flags = st.lists(st.booleans(), min_size=steps * num_seeds, max_size=steps * num_seeds)
    terminated = np.array(data.draw(flags)).reshape(shape)
    truncated = np.array(data.draw(flags)).reshape(shape)
    rewards = np.random.default_rng(data.draw(st.integers(0, 2**32))).normal(size=shape)
    actions = np.arange(steps * num_seeds).reshape(shape) % 2
    alive = np.array(data.draw(st.lists(st.booleans(), min_size=num_seeds, max_size=num_seeds)))
    start = data.draw(st.integers(0, 50))

    reference, at_once, one_by_one = (_recorder(members, trace=True) for _ in range(3))
    for recorder in (reference, at_once, one_by_one):
        recorder.alive[:] = alive
        recorder.episode_return[:] = 0.1  # episodes already under way
        recorder.episode_length[:] = 3
    _logged_step_by_step(reference, start, rewards, terminated, truncated)
    reference.trace_actions[start : start + steps] = actions
    at_once.env_steps(start, actions, rewards, terminated, truncated)
    for i in range(steps):
        result = type("Step", (), {"reward": rewards[i], "terminated": terminated[i], "truncated": truncated[i]})
        one_by_one.env_step(start + i, actions[i], result)
    assert _state(at_once) == _state(reference)
    assert _state(one_by_one) == _state(reference)


def _family(configs: list) -> tuple[SeedKnobs, object]:
    """The knobs of a family of one seed per config, and its online networks."""
    knobs = SeedKnobs.of(configs, torch.device("cpu"))
    spec = env_spec(CONFIG.env_id)
    sizes = layer_sizes(spec.obs_dim, CONFIG.hidden_sizes, spec.num_actions)
    online = init_params([seed_streams(i).init for i in range(len(configs))], sizes, torch.device("cpu"))
    return knobs, online


@pytest.mark.parametrize("updates", [0, 5, 13])
def test_after_updates_equal_one_after_update_call_per_update(updates):
    """Seeds synced every 3, 4 and 50 updates: the syncs inside 8 updates land on the same
    updates, with the same counters, as eight calls of after_update."""
    knobs, online = _family([CONFIG.replace(target_sync_period=p) for p in (3, 4, 50)])
    one_by_one = TargetNetwork(knobs, online, torch.device("cpu"))
    at_once = TargetNetwork(knobs, online, torch.device("cpu"))
    expected = np.stack([one_by_one.after_update(online, updates + i + 1, 100 + i) for i in range(8)])
    synced = at_once.after_updates(online, updates, 8, 100)
    np.testing.assert_array_equal(synced, expected)
    assert expected[:, :2].any()  # the 3- and 4-update seeds sync inside every 8 updates
    np.testing.assert_array_equal(at_once.last_sync_update, one_by_one.last_sync_update)
    np.testing.assert_array_equal(at_once.last_sync_step, one_by_one.last_sync_step)


# Two hard-target seeds and one Polyak seed (whose targets move on every update).
MIXED_TARGETS = [CONFIG, CONFIG, get_variant("replay-polyak").config.replace(total_env_steps=400, eval_period=200)]


def _mixed_recorder():
    knobs, online = _family(MIXED_TARGETS)
    recorder = _recorder([(c, [i]) for i, c in enumerate(MIXED_TARGETS)], trace=True)
    return recorder, TargetNetwork(knobs, online, torch.device("cpu")), online


@pytest.mark.parametrize("last_finite", [(True, True, True), (True, False, True)])
def test_chunk_updates_equal_one_gradient_update_call_per_update(last_finite):
    """Eight updates outside the diagnostic window, the last one making seed 1 diverge (or not):
    the window's drift ring, the drift meter, the loss trace and divergence match a step loop."""
    steps = range(11, 19)
    assert not any(in_diagnostic_window(CONFIG, s) for s in steps)
    losses = torch.arange(24, dtype=torch.float32).reshape(8, 3) / 3.0
    finite = np.ones((8, 3), dtype=bool)
    finite[-1] = last_finite
    synced = np.zeros((8, 3), dtype=bool)
    one_by_one, target, online = _mixed_recorder()
    at_once, _, _ = _mixed_recorder()
    for recorder in (one_by_one, at_once):
        recorder.window.count = recorder.window.size - 3  # the chunk wraps around the ring
    expected = [
        one_by_one.gradient_update_recorded(s, None, None, losses[i], finite[i], synced[i], online, target)
        for i, s in enumerate(steps)
    ]
    diverged = at_once.chunk_updates_recorded(steps, None, None, losses, finite, synced, online, target)
    np.testing.assert_array_equal(diverged, expected[-1])
    assert diverged.any() == (not all(last_finite))
    assert at_once.window.count == one_by_one.window.count
    drift, expected_drift = at_once.window.target_drift, one_by_one.window.target_drift
    torch.testing.assert_close(drift, expected_drift, rtol=0, atol=0, equal_nan=True)
    for name in ("sync_sum", "syncs", "updates"):
        np.testing.assert_array_equal(getattr(at_once.drift_meter, name), getattr(one_by_one.drift_meter, name))
    np.testing.assert_array_equal(np.stack(at_once.trace_losses), np.stack(one_by_one.trace_losses))
    np.testing.assert_array_equal(at_once.alive, one_by_one.alive)
    np.testing.assert_array_equal(at_once.diverged_step, one_by_one.diverged_step)


@pytest.mark.parametrize("case", ["synced early", "moving target in the window"])
def test_a_chunk_whose_drift_is_measured_before_its_end_is_refused(case):
    """chunk_length ends a chunk at a sync and before a moving target's window updates; a chunk
    that breaks that would leave a drift unmeasured, so it raises rather than records it."""
    recorder, target, online = _mixed_recorder()
    synced = np.zeros((4, 3), dtype=bool)
    steps = range(11, 15)
    if case == "synced early":
        synced[1, 0] = True
    else:
        steps = range(CONFIG.eval_period - 2, CONFIG.eval_period + 2)
    losses, finite = torch.zeros(4, 3), np.ones((4, 3), dtype=bool)
    with pytest.raises(RuntimeError, match="measures drift before its end"):
        recorder.chunk_updates_recorded(steps, None, None, losses, finite, synced, online, target)
