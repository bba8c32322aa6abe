"""The bench's one-graph-per-step torch DQN (agents/textbook/bench_step_graph.py)."""

import numpy as np
import torch

from agents.catalogue.presets import get_variant
from agents.engine.envs import CartPoleBatch, env_spec
from agents.engine.torch_envs import cartpole_physics
from agents.textbook.bench_step_graph import measure


def test_its_cartpole_step_is_the_engines_physics_within_float64_rounding():
    spec = env_spec("CartPole-v1")
    rng = np.random.default_rng(3)
    ours = CartPoleBatch(spec, 500)
    ours.reset(list(range(500)))
    ours._state = rng.uniform(-0.3, 0.3, (500, 4))
    actions = rng.integers(0, 2, 500)
    state = torch.from_numpy(ours._state.copy())
    elapsed = torch.zeros(500, dtype=torch.long)
    new, terminated, truncated, elapsed = cartpole_physics(state, torch.from_numpy(actions), elapsed, 500)
    result = ours.step(actions)
    np.testing.assert_allclose(new.float().numpy(), result.next_obs, rtol=1e-6)
    np.testing.assert_array_equal(terminated.numpy(), result.terminated)
    assert not truncated.any() and (elapsed == 1).all()


def test_it_trains_article_target_and_reports_its_compile_apart():
    config = get_variant("article-target").config
    result = measure(2, 150, config)
    assert result["compile_s"] > 0 and result["run_s"] > 0
    assert np.isfinite(result["final_loss"]) and result["final_loss"] > 0
    # It flushes denormals while it runs and restores them: a later test's subnormal floats
    # (hypothesis checks for them) must survive in this process.
    assert (torch.tensor([1e-40]) * 1.0).item() > 0
    assert np.float64(5e-324) * 1.0 > 0
