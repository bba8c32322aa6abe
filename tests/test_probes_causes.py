"""Failure patterns -> named causes, on Q-values written down (each the fixed point or the
pattern of one wrong rule), and the battery's pass / bug / fragile classification."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from agents.probes import PROBES_BY_NAME, ProbeShape, expected_q
from agents.probes.battery import (
    MAX_LATE_EPSILON,
    BatteryResult,
    ProbeResult,
    classify,
    judge,
    late_epsilon,
    measured_discount,
)
from agents.probes.causes import MECHANISMS, RESET_CHANGES, Cause, explain, headline, probe_causes

GAMMA = 0.99
B = 64  # a batch size, for the batch-summed Q's fixed point target / B


def result(probe: str, q, seed: int = 0, gamma: float = GAMMA, explored: float | None = None) -> ProbeResult:
    """One seed's result with Q written down (a 1-D q is shared by two actions), judged as the battery does."""
    q = np.asarray(q, dtype=np.float64)
    q = np.repeat(q[:, None], 2, axis=1) if q.ndim == 1 else q
    (judged,) = judge(PROBES_BY_NAME[probe], [seed], [(q, gamma, explored)], None, 1000, 0.0)
    return judged


def first_cause(probe: str, q, seeds: int = 3, gamma: float = GAMMA) -> str:
    return probe_causes([result(probe, q, seed, gamma) for seed in range(seeds)])[0].name


def battery(*probe_q, gamma: float = GAMMA) -> BatteryResult:
    results = [result(probe, q, seed, gamma) for probe, q in probe_q for seed in range(3)]
    verdicts = [classify(probe, [r for r in results if r.probe == probe]) for probe, _ in probe_q]
    return BatteryResult("test", ProbeShape(), (0, 1, 2), tuple(results), tuple(verdicts), 0.0)


def exact(probe: str, gamma: float = GAMMA, n_actions: int = 2) -> np.ndarray:
    return expected_q(probe, gamma, n_actions)


@pytest.mark.parametrize(
    ("probe", "q", "cause"),
    [
        ("LastStep", [15.0, 14.0], "unmasked"),  # still climbing toward 1 / (1 - gamma)
        ("ObservationReward", [-9.0, 9.0], "unmasked"),  # -1 rewards sink toward -1 / (1 - gamma)
        ("LastStep", [1.0, 1.99], "terminal_shift"),
        ("LastStep", [30.0, 1.0], "self_bootstrap"),
        ("LastStep", [1.0, 1.0], "no_bootstrap"),
        ("TerminateOrTruncate", [0.0, 1.0], "time_limit_terminal"),
        ("TimeLimit", [1.98], "time_limit_terminal"),
        ("TimeLimit", [0.1], "no_learning"),
        ("TwoStep", [0.0, 1.0], "no_bootstrap"),
        ("ObservationReward", [0.0, 0.0], "observation_ignored"),
        ("ActionReward", [[0.0, 0.0]], "actions_ignored"),
        ("ActionReward", [[1.0, -1.0]], "wrong_action"),
        ("ConstantReward", [[1.0, 0.05]], "greedy_gather"),
        ("ResetObservation", [0.3, 1 / (2 - GAMMA)], "reset_dropped"),
        # (s', a, r, s'): s0 stays at its terminal step's 1, s1 climbs its self-loop toward 1 / (1 - gamma).
        ("LastStep", [1.0, 12.0], "next_state_not_stored"),
        # A broadcast loss: both states at the replay's mean target.
        ("LastStep", [1 / (1 - GAMMA / 2)] * 2, "broadcast"),
        # Q summed over a batch of 64: every one-step value its reward / 64.
        ("ConstantReward", [1 / B], "batch_summed"),
        ("ConstantReward", [[0.05, -0.04]], "no_learning"),  # initial values of either sign
        # argmax for max: values g * j along the chain, one above its successor.
        ("DelayedReward", [GAMMA, 0.0, GAMMA, GAMMA, 0.0, 1.0], "argmax_as_value"),
        ("DelayedReward", [GAMMA / 2] * 3 + [0.0, GAMMA / 4, 1.0], "argmax_as_value"),  # j flipping between syncs
        # Too few updates: the near end has its values, the far end lags (not a geometric chain).
        ("DelayedReward", [0.1, 0.3, 0.9, GAMMA**2, GAMMA, 1.0], "too_slow"),
        ("DelayedReward", [0.7 ** (5 - i) for i in range(6)], "wrong_discount"),  # geometric: a discount
        ("ConstantReward", [-0.02], "no_learning"),  # below 0: no batch size scales 1 to it
        ("ResetObservation", [1.8, 0.0], "unstable"),  # unmasked terminals cannot lift this probe
        ("LastStep", [3.3, 0.5], "unstable"),  # above and below: overshoot, not a bootstrap rule
        ("ConstantReward", [np.nan], "diverged"),
    ],
)
def test_each_wrong_rule_is_named_first_on_the_probe_built_for_it(probe, q, cause):
    assert first_cause(probe, q) == cause


def test_a_discount_applied_wrongly_is_measured_and_named():
    wrong = [0.8 ** (5 - i) for i in range(6)]
    (cause,) = [c for c in probe_causes([result("DelayedReward", wrong)]) if c.name == "wrong_discount"]
    assert cause.detail == "measured 0.800 per step, declared 0.990"
    # Squared, 0.9 is told apart; 0.99 squared moves V(s0) by less than the tolerance (docs/probes.md).
    twice = [0.9 ** (2 * (5 - i)) for i in range(6)]
    (cause,) = [c for c in probe_causes([result("DelayedReward", twice, gamma=0.9)]) if c.name == "wrong_discount"]
    assert cause.detail == "measured 0.810 per step, declared 0.900: gamma applied twice"
    assert result("DelayedReward", [GAMMA ** (2 * (5 - i)) for i in range(6)]).passed
    assert measured_discount(PROBES_BY_NAME["DelayedReward"], np.repeat(np.array(wrong)[:, None], 2, 1)) == (
        pytest.approx(0.8)
    )


def test_the_cause_sentence_gives_the_numbers_and_the_fix():
    (cause, *_) = probe_causes([result("LastStep", [98.0, 97.6], seed) for seed in range(5)])
    assert cause.sentence() == (
        "Q at s0 reaches 98.00 on 5 of 5 seeds, expected 1.99: the target bootstraps through terminal states; "
        "multiply the bootstrap term by (1 - terminated)"
    )
    with pytest.raises(ValueError, match="name='nope' is invalid"):
        Cause("nope", "LastStep", 1, 1, 1, "s0", 0.0, 0.0)


@pytest.mark.parametrize(
    ("probe", "q", "cause"),
    [
        # Signatures a probe shows without isolating them: read there, named first from the probe
        # that isolates them (explain).
        ("ResetObservation", [1 / (2 - GAMMA)] * 2, "broadcast"),
        ("ObservationReward", [-1 / B, 1 / B], "batch_summed"),
        ("ActionReward", [[-1 / B, 1 / B]], "batch_summed"),
        ("TimeLimit", [[1 + 2 * GAMMA] * 4], "argmax_as_value"),  # j = 2 with 4 actions
    ],
)
def test_signatures_a_probe_shows_without_isolating_them_are_among_its_readings(probe, q, cause):
    names = [c.name for c in probe_causes([result(probe, q, seed) for seed in range(3)])]
    assert cause in names and names[0] != cause


def test_a_discount_larger_than_declared_outranks_a_flat_chain_and_reads_on_the_time_limit_probe():
    # gamma 0.9 declared, 0.99 applied: the chain is flatter than the declared one (observation_ignored
    # fits too) and TimeLimit climbs past 1 / (1 - 0.9).
    chain = [0.99 ** (5 - i) for i in range(6)]
    assert first_cause("DelayedReward", chain, gamma=0.9) == "wrong_discount"
    causes = explain(battery(("DelayedReward", chain), ("TimeLimit", [21.6]), gamma=0.9))
    assert causes["TimeLimit"][0].name == "wrong_discount"
    assert "Q needs a discount of at least 0.954" in causes["TimeLimit"][0].sentence()


def test_a_dropped_reset_is_named_on_the_probes_it_disturbs_from_the_probe_that_isolates_it():
    # Derived: with the reset observation dropped, ObservationReward stores (x_prev, r(x_new)), so Q(x)
    # is the mean reward 0 (observation_ignored's fixed point); ResetObservation's s1 goes to 1 / (2 - g).
    probes = [
        ("ResetObservation", [0.4, 1 / (2 - GAMMA)]),
        ("ObservationReward", [0.0, 0.0]),
        ("ObservationActionReward", [[0.0, 0.0], [0.0, 0.0]]),
        ("LastStep", exact("LastStep")[:, 0]),
        ("ActionReward", exact("ActionReward")),
    ]
    causes = explain(battery(*probes))
    for probe in ("ResetObservation", "ObservationReward", "ObservationActionReward"):
        assert causes[probe][0].name == "reset_dropped", probe
    assert causes["ObservationReward"][0].source == "ResetObservation"
    assert "(as ResetObservation, the probe that isolates it, shows)" in causes["ObservationReward"][0].sentence()
    # Flat actions on ActionReward, which a dropped reset leaves exact: the broadcast loss instead.
    flat = explain(battery(*probes[:4], ("ActionReward", [[0.1, 0.1]])))
    assert flat["ObservationReward"][0].name == "broadcast"


def test_the_probes_a_dropped_reset_disturbs_are_those_whose_reset_differs_from_the_last_observation():
    from agents.probes import ProbeEnv

    for probe in PROBES_BY_NAME:
        env = ProbeEnv(probe)
        starts, ends = set(), set()
        for episode in range(40):
            obs, _ = env.reset(seed=episode)
            starts.add(obs.tobytes())
            while True:
                obs, _, terminated, truncated, _ = env.step(episode % 2)
                if terminated or truncated:
                    ends.add(obs.tobytes())
                    break
        assert (starts != ends or len(starts) > 1) == (probe in RESET_CHANGES), probe


def test_next_state_not_stored_is_read_from_last_step_on_the_chains():
    causes = explain(
        battery(
            ("LastStep", [1.0, 12.0]),
            ("DelayedReward", [0.17, 0.3, 0.5, 0.6, 0.8, 0.98]),
            ("ResetObservation", [0.5, 1 / (2 - GAMMA)]),
            ("TwoStep", [0.3, 1 / (2 - GAMMA)]),
            ("ConstantReward", [1.0]),
        )
    )
    for probe in ("LastStep", "DelayedReward", "ResetObservation", "TwoStep"):
        assert causes[probe][0].name == "next_state_not_stored", probe


def test_a_batch_summed_q_and_an_argmax_bootstrap_are_read_across_probes():
    summed = explain(battery(("ConstantReward", [1 / B]), ("TwoStep", [0.0, 1 / B]), ("LastStep", [1 / B, 1 / B])))
    assert [summed[p][0].name for p in ("ConstantReward", "TwoStep", "LastStep")] == ["batch_summed"] * 3
    argmax = explain(
        battery(("DelayedReward", [GAMMA, 0.0, GAMMA, GAMMA, 0.0, 1.0]), ("TwoStep", [0.0, 1.0]), ("TimeLimit", [1.0]))
    )
    assert [argmax[p][0].name for p in ("DelayedReward", "TwoStep", "TimeLimit")] == ["argmax_as_value"] * 3
    # Without the chain's evidence, TwoStep's (0, 1) is no bootstrap.
    assert explain(battery(("TwoStep", [0.0, 1.0])))["TwoStep"][0].name == "no_bootstrap"


def test_unmasked_terminals_shown_on_last_step_explain_overshoot_on_the_reset_probe():
    causes = explain(battery(("LastStep", [15.0, 14.0]), ("ResetObservation", [1.8, 0.0])))
    assert causes["ResetObservation"][0].name == "unmasked"


def test_exploration_left_at_the_end_fails_the_action_probe_with_its_cause():
    right = exact("ActionReward")
    assert not result("ActionReward", right, explored=1.0).passed
    assert result("ActionReward", right, explored=0.1).passed and result("ActionReward", right).passed
    assert result("ConstantReward", [1.0], explored=1.0).passed  # judged on ActionReward only
    (cause,) = probe_causes([result("ActionReward", right, seed, explored=0.98) for seed in range(3)])
    assert cause.name == "epsilon_never_decays" and cause.measured == pytest.approx(0.98)
    assert cause.sentence().startswith("epsilon about 0.98 over the last 10% of training on 3 of 3 seeds")
    assert MAX_LATE_EPSILON == 0.5


def test_late_epsilon_is_the_share_of_other_actions_at_the_end_scaled_to_epsilon():
    probe = PROBES_BY_NAME["ActionReward"]
    # 100 steps: the last 10 take the best action (1) 5 times: a share of 0.5 of other actions,
    # which uniform exploration over 2 actions gives at epsilon 1.
    log = [(0, 0)] * 90 + [(0, 1), (0, 0)] * 5
    assert late_epsilon(probe, log, 2) == pytest.approx(1.0)
    assert late_epsilon(probe, [(0, 1)] * 100, 2) == 0.0
    assert late_epsilon(probe, [(0, 2)] * 100, 4) == pytest.approx(4 / 3)  # capped by nothing: all others
    assert late_epsilon(probe, [], 2) is None
    assert late_epsilon(PROBES_BY_NAME["ConstantReward"], [(0, 1)] * 10, 2) is None  # no best action


def test_the_headline_is_the_first_every_seed_failures_top_cause():
    probes = battery(("TwoStep", [GAMMA, 1.0]), ("LastStep", [15.0, 14.0]), ("ConstantReward", [9.0]))
    assert headline(probes, explain(probes)).name == "unmasked"
    assert headline(battery(("TwoStep", [GAMMA, 1.0])), {}) is None


def test_mechanisms_name_known_causes_and_probes():
    assert {m.cause for m in MECHANISMS} >= {"reset_dropped", "next_state_not_stored", "argmax_as_value"}
    with pytest.raises(ValueError, match="cause='nope' is invalid"):
        type(MECHANISMS[0])("nope", ("LastStep",), ())


def test_a_broadcast_loss_is_read_across_the_observation_and_action_probes():
    causes = explain(battery(("ObservationReward", [0.0, 0.0]), ("ActionReward", [[0.1, 0.1]])))
    assert causes["ObservationReward"][0].name == "broadcast" and causes["ActionReward"][0].name == "broadcast"
    alone = explain(battery(("ObservationReward", [0.0, 0.0]), ("ActionReward", [[-1.0, 1.0]])))
    assert alone["ObservationReward"][0].name == "observation_ignored"


def test_overshoot_on_the_reset_probe_reads_values_too_high_elsewhere_as_overshoot():
    causes = explain(battery(("ResetObservation", [1.8, 0.0]), ("ConstantReward", [1.4])))
    assert causes["ConstantReward"][0].name == "unstable"
    unmasked = explain(battery(("ResetObservation", [1.0, 0.0]), ("ConstantReward", [1.4])))
    assert unmasked["ConstantReward"][0].name == "unmasked"


def test_the_previous_steps_terminal_flag_on_its_probe_explains_bootstraps_elsewhere():
    causes = explain(battery(("LastStep", [1.0, 1.99]), ("TwoStep", [5.0, 6.0])))
    assert causes["TwoStep"][0].name == "terminal_shift"


def test_no_bootstrap_on_the_two_step_probe_outranks_a_terminal_time_limit():
    with_two_step = explain(battery(("TwoStep", [0.0, 1.0]), ("TerminateOrTruncate", [0.0, 1.0])))
    assert with_two_step["TerminateOrTruncate"][0].name == "no_bootstrap"
    alone = explain(battery(("TwoStep", [GAMMA, 1.0]), ("TerminateOrTruncate", [0.0, 1.0])))
    assert alone["TerminateOrTruncate"][0].name == "time_limit_terminal"


def test_failures_on_every_seed_are_a_bug_and_on_some_seeds_fragile():
    good, bad = [GAMMA, 1.0], [0.0, 1.0]
    assert classify("TwoStep", [result("TwoStep", good, s) for s in range(3)]).status == "pass"
    assert classify("TwoStep", [result("TwoStep", bad, s) for s in range(3)]).status == "fail-every-seed"
    mixed = [result("TwoStep", q, s) for s, q in enumerate([good, bad, good])]
    verdict = classify("TwoStep", mixed)
    assert (verdict.status, verdict.failed_seeds, verdict.seeds) == ("fail-some-seeds", 1, 3)
    fragile, *rest = probe_causes(mixed)
    assert fragile.name == "fragile" and fragile.sentence().startswith("Q at s0 reaches 0.00 on 1 of 3 seeds")
    assert rest[0].name == "no_bootstrap"  # what the failing seed looks like comes next


def test_the_time_limit_probe_passes_on_the_way_to_its_value_and_not_past_it():
    assert result("TimeLimit", [20.0]).passed  # climbing, ten times the terminal-limit value
    assert result("TimeLimit", [119.0]).passed
    assert not result("TimeLimit", [3.0]).passed  # under twice 1.98
    assert not result("TimeLimit", [121.0]).passed  # past 100 by more than a fifth of it


def test_a_result_record_is_validated_and_plain():
    record = result("TwoStep", [GAMMA, 1.0])
    assert record.to_dict()["measured"] == [[GAMMA, GAMMA], [1.0, 1.0]]
    with pytest.raises(ValueError, match="probe='Nope' is invalid"):
        ProbeResult("Nope", *[getattr(record, f) for f in list(record.__dataclass_fields__)[1:]])


def test_a_seed_no_cause_fits_takes_the_mechanism_its_dedicated_probe_shows():
    causes = explain(battery(("ConstantReward", [[1.0, -0.2]]), ("ActionReward", [[-0.2, 0.9]])))
    assert [c.name for c in causes["ActionReward"]] == ["greedy_gather"]
    alone = explain(battery(("ConstantReward", [1.0]), ("ActionReward", [[-0.2, 0.9]])))
    assert alone["ActionReward"] == []


def test_a_reading_on_one_seed_in_three_establishes_nothing_across_probes():
    two_step = [result("TwoStep", q, seed) for seed, q in enumerate([[GAMMA, 1.0], [0.0, 1.0], [GAMMA, 1.0]])]
    cut = [result("TerminateOrTruncate", [0.0, 1.0], seed) for seed in range(3)]
    verdicts = (classify("TwoStep", two_step), classify("TerminateOrTruncate", cut))
    causes = explain(BatteryResult("test", ProbeShape(), (0, 1, 2), tuple(two_step + cut), verdicts, 0.0))
    assert causes["TerminateOrTruncate"][0].name == "time_limit_terminal"
    assert causes["TwoStep"][0].name == "fragile"


def test_a_lagging_chain_that_rises_given_more_steps_is_too_slow_and_one_that_stays_is_a_discount():
    settled = [0.9 ** (5 - i) for i in range(6)]  # geometric: reads as a discount of 0.9
    assert result("DelayedReward", settled).lags()
    stays = replace(result("DelayedReward", settled), later=tuple((v, v) for v in settled))
    rises = replace(stays, later=tuple((v, v) for v in exact("DelayedReward")[:, 0]))
    assert probe_causes([stays])[0].name == "wrong_discount"
    (cause, *_) = probe_causes([rises])
    assert cause.name == "too_slow" and "V(s0) rose by 0.36 given twice the steps" in cause.detail


def test_a_probe_establishes_one_mechanism_the_first_its_readings_support():
    # A dropped reset leaves s0 never stored (here lifted above the ceiling) and s1 at 1 / (2 - g):
    # reset_dropped and overshoot both fit ResetObservation; only reset_dropped reads across probes.
    causes = explain(
        battery(("ResetObservation", [1.9, 1 / (2 - GAMMA)]), ("TimeLimit", [2.5]), ("ObservationReward", [0.0, 0.0]))
    )
    assert causes["ObservationReward"][0].name == "reset_dropped"
    assert causes["TimeLimit"][0].name != "unstable"
