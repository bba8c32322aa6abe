"""Our engine against Stable-Baselines3's own DQN fed the same random numbers.

ablations/sb3_crosscheck.py --lockstep gives SB3's DQN our seed's start weights, exploration draws,
replay indices and env reset seed (each substitution keeps its draw's distribution), trains both
on an imported rl-zoo entry, and finds the first env step whose action differs and the first
update after which either network's bits differ. Both sides then score the last common network
their own way. A semantic difference in what the importer or the engine does (order of sync and
updates, burst sizes, exploration schedule, masking, the loss, the clip, Adam, greedy evaluation)
shows up as a parted run or a different score. CI installs the sb3 extra, so these run there.
"""

import importlib.util

import pytest

from tests.conftest import NEEDS_BOX2D

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("stable_baselines3") is None, reason="Stable-Baselines3 is not installed ([sb3] extra)"
)


@pytest.fixture(scope="module")
def crosscheck():
    from ablations import sb3_crosscheck

    return sb3_crosscheck


# Long enough for each entry to pass learning_starts, run several bursts and sync the target
# several times: CartPole (bursts of 128 every 256 steps, sync every 10), MountainCar (8 every
# 16 from 1,000, sync every 600), Acrobot (4 every 4 from the first step, sync every 250).
CASES = [
    pytest.param("CartPole-v1", 2_000, id="CartPole-v1"),
    pytest.param("MountainCar-v0", 2_400, id="MountainCar-v0"),
    pytest.param("Acrobot-v1", 800, id="Acrobot-v1"),
    pytest.param("LunarLander-v3", 600, id="LunarLander-v3", marks=NEEDS_BOX2D),
]


@pytest.mark.parametrize("env_id, steps", CASES)
def test_sb3_fed_our_random_numbers_acts_and_learns_bit_for_bit_as_our_engine(crosscheck, env_id, steps):
    result = crosscheck.lockstep(env_id, seed=3, steps=steps)
    assert result["env_steps"] == steps
    assert result["updates"]["ours"] > 0
    assert result["first_different_action"] is None, crosscheck.describe_lockstep(result)
    assert result["first_different_network"] is None, crosscheck.describe_lockstep(result)
    assert result["updates"]["sb3"] >= result["updates"]["ours"]
    # Both evaluations score the same network on the same start states: the same episodes, the
    # returns summed in another order (one action apart would move LunarLander's by far more).
    sb3, ours = result["final_return"]["sb3"], result["final_return"]["ours"]
    assert sb3 == pytest.approx(ours, rel=1e-12, abs=1e-9), crosscheck.describe_lockstep(result)


def test_the_first_difference_is_where_either_list_parts_or_ends(crosscheck):
    assert crosscheck.first_difference([1, 2, 3], [1, 2, 3]) is None
    assert crosscheck.first_difference([1, 5, 3], [1, 2, 3]) == 1
    assert crosscheck.first_difference([1, 2], [1, 2, 3]) == 2
    assert crosscheck.first_difference([1, 2, 3, 4], [1, 2, 3]) is None  # SB3 finishes its rollout
