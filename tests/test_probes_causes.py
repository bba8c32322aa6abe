"""Failure patterns -> named causes, on Q-values written down (each the fixed point or the
pattern of one wrong rule), and the battery's pass / bug / fragile classification."""

from __future__ import annotations

import numpy as np
import pytest

from agents.probes import PROBES_BY_NAME, ProbeShape, expected_q
from agents.probes.battery import BatteryResult, ProbeResult, classify, measured_discount, within
from agents.probes.causes import Cause, explain, probe_causes

GAMMA = 0.99


def result(probe: str, q, seed: int = 0, gamma: float = GAMMA) -> ProbeResult:
    spec = PROBES_BY_NAME[probe]
    q = np.asarray(q, dtype=np.float64)
    q = np.repeat(q[:, None], 2, axis=1) if q.ndim == 1 else q
    expected = expected_q(spec, gamma, q.shape[1])
    ok = within(spec, q, expected, gamma)
    worst = np.unravel_index(int(np.argmax(np.where(ok, 0, np.abs(q - expected)))), q.shape)
    return ProbeResult(
        probe, seed, gamma, 1000, spec.labels, tuple(map(tuple, q)), tuple(map(tuple, expected)), bool(ok.all()),
        spec.labels[worst[0]], int(worst[1]), float(q[worst]), float(expected[worst]),
        measured_discount(spec, q), 0.0,
    )  # fmt: skip


def first_cause(probe: str, q, seeds: int = 3) -> str:
    return probe_causes([result(probe, q, seed) for seed in range(seeds)])[0].name


def battery(*probe_q) -> BatteryResult:
    results = [result(probe, q, seed) for probe, q in probe_q for seed in range(3)]
    verdicts = [classify(probe, [r for r in results if r.probe == probe]) for probe, _ in probe_q]
    return BatteryResult("test", ProbeShape(), (0, 1, 2), tuple(results), tuple(verdicts), 0.0)


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
        ("ResetObservation", [0.3, 0.0], "reset_dropped"),
        ("ConstantReward", [0.02], "no_learning"),
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
