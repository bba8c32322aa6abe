"""The probe environments: closed-form Q against value iteration on the envs themselves, the
shapes, determinism, and old gym's API through the shim."""

from __future__ import annotations

from collections import defaultdict

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.probes import PROBES, PROBES_BY_NAME, ProbeEnv, ProbeShape, expected_q, probe_env_id
from agents.probes.battery import time_limit_terminal_q

SHAPES = (ProbeShape(), ProbeShape((8,), 4), ProbeShape((2, 3, 3), 3))


def transitions(env: ProbeEnv, episodes: int = 80, seed: int = 0) -> list[tuple]:
    """Every transition of whole episodes, keyed by observation bytes: (obs, action, reward, next
    obs, terminated, truncated). Actions cycle with the episode and the step, so each action is
    taken equally often at every step of an episode (the limit of a uniformly random policy)."""
    found = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        for t in range(100):
            action = (episode + t) % env.action_space.n
            next_obs, reward, terminated, truncated, _ = env.step(action)
            found.append((obs.tobytes(), action, reward, next_obs.tobytes(), terminated, truncated))
            if terminated or truncated:
                break
            obs = next_obs
    return found


def fitted_q(found: list[tuple], gamma: float, n_actions: int, rule: str = "correct") -> dict[bytes, np.ndarray]:
    """The fixed point of the learning rule's Bellman operator on the stored transitions, each
    (obs, action) regressed to the mean of its targets, as replay does: value iteration to 1e-12."""
    by_key = defaultdict(list)
    for obs, action, reward, next_obs, terminated, truncated in found:
        by_key[obs, action].append((reward, next_obs, terminated, truncated))
    q = {obs: np.zeros(n_actions) for obs, *_ in found} | {t[3]: np.zeros(n_actions) for t in found}
    for _ in range(20_000):
        new = {obs: values.copy() for obs, values in q.items()}
        for (obs, action), outcomes in by_key.items():
            targets = []
            for reward, next_obs, terminated, truncated in outcomes:
                stop = {"correct": terminated, "unmasked": False, "time_limit_terminal": terminated or truncated}[rule]
                targets.append(reward + (0.0 if stop else gamma * q[next_obs].max()))
            new[obs][action] = np.mean(targets)
        change = max(np.abs(new[o] - q[o]).max() for o in q)
        q = new
        if change < 1e-12:
            break
    return q


@settings(max_examples=8, deadline=None)
@given(gamma=st.floats(0.0, 0.95), shape=st.sampled_from(SHAPES), probe=st.sampled_from([p.name for p in PROBES]))
def test_closed_form_q_is_the_fixed_point_of_the_bellman_operator_on_the_env(gamma, shape, probe):
    env = ProbeEnv(probe, shape.obs_shape, shape.n_actions)
    found = transitions(env)
    q = fitted_q(found, gamma, shape.n_actions)
    expected = expected_q(probe, gamma, shape.n_actions)
    for i, obs in enumerate(env.state_observations()):
        np.testing.assert_allclose(q[obs.tobytes()], expected[i], atol=1e-7, err_msg=f"{probe} state {i}")


# The wrong rules a Bellman operator on stored transitions can model (the others change what is
# stored: a dropped reset observation, the previous step's flag, an ignored input).
MODELLED = [
    (p.name, rule) for p in PROBES for rule in p.alternatives(0.9, 2) if rule in ("unmasked", "time_limit_terminal")
]


@pytest.mark.parametrize("gamma", [0.5, 0.9])
@pytest.mark.parametrize(("probe", "rule"), MODELLED)
def test_the_wrong_rules_fixed_points_are_what_the_bellman_operator_gives(probe, rule, gamma):
    alternatives = PROBES_BY_NAME[probe].alternatives(gamma, 2)
    env = ProbeEnv(probe)
    q = fitted_q(transitions(env), gamma, 2, rule)
    for i, obs in enumerate(env.state_observations()):
        np.testing.assert_allclose(q[obs.tobytes()], alternatives[rule][i], atol=1e-7, err_msg=f"{probe} state {i}")


def test_the_time_limit_probe_separates_bootstrapping_from_a_terminal_time_limit():
    for gamma in (0.9, 0.99, 0.999):
        settled = time_limit_terminal_q(gamma)
        assert settled < 2.0
        assert expected_q("TimeLimit", gamma)[0, 0] >= 5 * settled


def test_every_state_has_its_own_observation_and_the_reset_observation_is_never_seen_again():
    for probe in PROBES:
        obs = ProbeEnv(probe.name).state_observations()
        assert len({o.tobytes() for o in obs}) == len(obs), probe.name
    env = ProbeEnv("ResetObservation")
    first = env.reset(seed=3)[0]
    later = [t[3] for t in transitions(env)]
    assert first.tobytes() not in later


@pytest.mark.parametrize("shape", SHAPES)
def test_probes_take_the_users_shapes_and_extra_dimensions_are_constant(shape):
    for probe in PROBES:
        if shape.n_actions < probe.min_actions:
            continue
        env = gym.make(probe_env_id(probe, shape))
        assert env.observation_space.shape == shape.obs_shape and env.action_space.n == shape.n_actions
        obs, _ = env.reset(seed=0)
        flat = obs.reshape(-1)
        if shape.is_image:
            assert np.all(flat == flat[0])
        else:
            assert np.all(flat[1:] == 0)
        expected = expected_q(probe, 0.9, shape.n_actions)
        assert expected.shape == (len(probe.codes), shape.n_actions)


def test_the_plain_ids_are_registered_on_import_and_seeded_resets_repeat():
    for probe in PROBES:
        assert probe.env_id in gym.registry
    env = gym.make("dqn-probes/ObservationReward-v0")
    first = [env.reset(seed=s)[0][0] for s in range(20)]
    again = [env.reset(seed=s)[0][0] for s in range(20)]
    assert first == again and set(first) == {-1.0, 1.0}


def test_bad_shapes_are_one_line_errors():
    with pytest.raises(ValueError, match="obs_shape=\\(4, 4\\) is invalid"):
        ProbeShape((4, 4))
    with pytest.raises(ValueError, match="n_actions=0 is invalid"):
        ProbeShape((4,), 0)
    with pytest.raises(ValueError, match="needs 2"):
        ProbeEnv("ActionReward", (4,), 1)
    with pytest.raises(ValueError, match="gamma=1.0 is invalid"):
        expected_q("TwoStep", 1.0)


def test_the_old_gym_shim_has_old_gyms_exact_semantics():
    env = gym.make(probe_env_id("TerminateOrTruncate", old_gym=True))
    env.unwrapped.seed(0)
    outcomes = {}
    for _ in range(40):
        obs = env.reset()
        assert isinstance(obs, np.ndarray) and obs.shape == (4,)
        while True:
            step = env.step(0)
            assert len(step) == 4
            obs, reward, done, info = step
            if done:
                outcomes[reward] = info
                break
    # From A the episode is cut (truncated, not terminated): done, with TimeLimit.truncated True.
    assert outcomes[0.0]["TimeLimit.truncated"] is True
    # From B it terminates: done, and old gym's TimeLimit wrapper set no key.
    assert "TimeLimit.truncated" not in outcomes[1.0]
    time_limit = gym.make(probe_env_id("TimeLimit", old_gym=True))
    time_limit.reset(seed=1)
    assert time_limit.step(0)[2:] == (False, {"probe_state": "s"})
    assert time_limit.step(0)[2:] == (True, {"probe_state": "s", "TimeLimit.truncated": True})


def test_the_old_gym_shim_seeds_the_next_reset_and_can_return_the_info():
    env = gym.make(probe_env_id("ObservationReward", old_gym=True)).unwrapped
    env.seed(7)
    first = env.reset()
    env.seed(7)
    assert np.array_equal(env.reset(), first)
    obs, info = env.reset(return_info=True)
    assert "probe_state" in info


def stored(found: list[tuple], bug: str) -> list[tuple]:
    """The transitions a storage bug puts in the replay instead of the env's (whole episodes in order)."""
    if bug == "next_state_not_stored":  # obs = next_obs before the push: (s', a, r, s')
        return [(nxt, a, r, nxt, term, trunc) for _, a, r, nxt, term, trunc in found]
    rewritten, last_end, first = [], None, True
    for obs, a, r, nxt, term, trunc in found:  # reset_dropped: an episode starts from the last one's end
        rewritten.append((last_end if first and last_end is not None else obs, a, r, nxt, term, trunc))
        first = term or trunc
        if first:
            last_end = nxt
    return rewritten


@pytest.mark.parametrize("gamma", [0.5, 0.9])
@pytest.mark.parametrize(
    ("probe", "bug"),
    [("LastStep", "next_state_not_stored"), ("ResetObservation", "reset_dropped")],
)
def test_a_storage_bugs_fixed_point_is_what_the_bellman_operator_gives_on_what_it_stores(probe, bug, gamma):
    env = ProbeEnv(probe)
    # 81 episodes less the first (it starts from a true reset): every action meets each outcome
    # equally often, the replay's limit under the uniform policy.
    rewritten = stored(transitions(env, episodes=81), bug)
    first_end = next(i for i, t in enumerate(rewritten) if t[4] or t[5])
    q = fitted_q(rewritten[first_end + 1 :], gamma, 2)
    alternative = PROBES_BY_NAME[probe].alternatives(gamma, 2)[bug]
    for i, obs in enumerate(env.state_observations()):
        if np.isfinite(alternative[i]).all():
            np.testing.assert_allclose(q[obs.tobytes()], alternative[i], atol=1e-7, err_msg=f"{probe} state {i}")


@pytest.mark.parametrize("gamma", [0.5, 0.9])
@pytest.mark.parametrize("probe", ["LastStep", "ResetObservation"])
def test_a_broadcast_loss_settles_every_q_at_the_replays_mean_target(probe, gamma):
    # A (B, 1) prediction against a (B,) target: every Q regresses to the mean target over the
    # replay, m = mean(r + gamma (1 - terminated) m), the same at every state.
    found = transitions(ProbeEnv(probe))
    m = 0.0
    for _ in range(10_000):
        m = float(np.mean([r + (0.0 if term else gamma * m) for _, _, r, _, term, _ in found]))
    np.testing.assert_allclose(PROBES_BY_NAME[probe].alternatives(gamma, 2)["broadcast"], m, atol=1e-7)
