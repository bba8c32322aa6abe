"""Named causes: lint findings read against the rungs that change their field (tiny exact cases)."""

import pytest

from reports.diagnosis.cause import CONFIRMED, CONTRADICTED, FOUND, UNSETTLED, UNTESTED, Cause, named_causes
from reports.diagnosis.record import Base, LintLine, Rung, SeedFigures, changed_fields, split_fields
from reports.render.html import cause_sentence


def finding(field: str, value="1", why="why", fix="fix") -> LintLine:
    return LintLine(f"rule-{field}", field, value, why, fix)


def rung(key: str, fields: str, verdict: str, p: float = 0.9, seeds: int = 8, base_iqm: float = 10.0, **extra) -> Rung:
    return Rung(
        rung=key, change=f"Change {key}", verdict=verdict, effect_size=p, ci_low=p - 0.1, ci_high=min(1.0, p + 0.1),
        p_value=0.001, p_adjusted=0.01, fields=tuple(sorted(split_fields(fields))),
        base=SeedFigures(base_iqm, None, 0, seeds), with_change=SeedFigures(200.0, None, 0, seeds), **extra,
    )  # fmt: skip


def ranked(*rows: Rung) -> tuple[Rung, ...]:
    return rows


def test_a_finding_whose_field_a_helping_change_sets_is_confirmed_by_the_best_such_change():
    changes = ranked(
        rung("no-target", "double_q, target_network, target_sync_period", "supported", 0.99),
        rung("sync-x0.01", "target_sync_period", "supported", 0.95),
        rung("lr-x0.1", "learning_rate", "inconclusive", 0.6),
    )
    causes = named_causes([finding("target_sync_period")], changes)
    assert [(c.kind, c.field) for c in causes] == [(CONFIRMED, "target_sync_period")]
    assert causes[0].rung.rung == "no-target" and causes[0].other_helping == 1
    assert causes[0].fields == {"target_sync_period"}


def test_confirmed_first_in_lint_order_then_found_then_unsettled_untested_contradicted():
    changes = ranked(
        rung("double-q", "double_q", "supported", 0.97),  # flagged by nothing: found
        rung("eps-constant", "epsilon_decay_fraction, epsilon_decay_steps, epsilon_start", "supported", 0.9),
        rung("gamma-0.99", "gamma", "inconclusive", 0.7),
        rung("lr-x10", "learning_rate", "refuted", 0.1),
        rung("early-start", "learning_starts", "supported", 0.8),
    )
    lint = [
        finding("learning_rate"),  # only a hurting change: contradicted, last
        finding("hidden_sizes"),  # no rung sets it: untested
        finding("gamma"),  # not settled
        finding("epsilon_decay_steps"),  # confirmed
        finding("learning_starts"),  # confirmed, after the one lint lists first
    ]
    causes = named_causes(lint, changes)
    assert [(c.kind, c.field) for c in causes] == [
        (CONFIRMED, "epsilon_decay_steps"),
        (CONFIRMED, "learning_starts"),
        (FOUND, "double_q"),  # fields as the change sets them: {"double_q"}
        (UNSETTLED, "gamma"),
        (UNTESTED, "hidden_sizes"),
        (CONTRADICTED, "learning_rate"),
    ]


def test_an_unsettled_change_of_the_field_outranks_a_hurting_one():
    changes = ranked(rung("lr-x0.1", "learning_rate", "inconclusive", 0.6), rung("lr-x10", "learning_rate", "refuted"))
    (cause,) = named_causes([finding("learning_rate")], changes)
    assert cause.kind == UNSETTLED and cause.rung.rung == "lr-x0.1"


def test_a_helping_change_of_a_flagged_field_is_its_confirmation_not_a_second_cause():
    changes = ranked(rung("no-bug-stale-target", "bug_stale_target", "supported"))
    causes = named_causes([finding("bug_stale_target")], changes)
    assert [c.kind for c in causes] == [CONFIRMED]


def test_crashed_rungs_leave_a_finding_untested_and_nothing_is_named_without_evidence():
    changes = ranked(rung("lr-x0.1", "learning_rate", "error"), rung("huber", "loss", "inconclusive"))
    assert [c.kind for c in named_causes([finding("learning_rate")], changes)] == [UNTESTED]
    assert named_causes([], changes) == []
    assert named_causes([], ()) == []


def test_a_cause_without_its_evidence_is_refused():
    with pytest.raises(ValueError, match="needs the lint finding"):
        Cause(CONFIRMED, "gamma", None, rung("g", "gamma", "supported"))
    with pytest.raises(ValueError, match="needs the rung"):
        Cause(CONFIRMED, "gamma", finding("gamma"), None)
    with pytest.raises(ValueError, match="kind='likely' is invalid"):
        Cause("likely", "gamma", finding("gamma"), None)


def test_changed_fields_are_the_keys_whose_values_differ():
    base = {"gamma": 0.5, "learning_rate": 1e-3, "double_q": False}
    assert changed_fields(base, {**base, "gamma": 0.99}) == ("gamma",)
    assert changed_fields(base, {"gamma": 0.5, "learning_rate": 1e-3, "tau": 1.0}) == ("double_q", "tau")
    assert changed_fields({}, base) == ()


def test_each_kind_reads_as_one_sentence_with_its_evidence():
    confirmed = Cause(CONFIRMED, "gamma", finding("gamma", "0.5", "a two-step horizon", "use 0.99"),
                      rung("gamma-0.99", "gamma", "supported", 0.86), 1)  # fmt: skip
    text = cause_sentence(confirmed)
    assert text.startswith("gamma = 0.5: a two-step horizon. Changing it alone helps: Change gamma-0.99")
    assert "10 -> 200" in text and "P(improvement) = 0.86 [0.76, 0.96]" in text and "p = 0.010" in text
    assert "1 other change(s) of gamma help too" in text and text.endswith("Fix: use 0.99.")
    found = cause_sentence(Cause(FOUND, "double_q", None, rung("double-q", "double_q", "supported")))
    assert found.startswith("Change double-q helps: late return (IQM) 10 -> 200")
    assert "no lint rule flags double_q" in found
    unsettled = Cause(UNSETTLED, "gamma", finding("gamma"), rung("g", "gamma", "inconclusive", 0.7, seeds_needed=40))
    assert "Not settled whether changing it alone helps" in cause_sentence(unsettled)
    assert "about 40 seeds would settle it" in cause_sentence(unsettled)
    assert "No one-knob change of gamma was tried" in cause_sentence(Cause(UNTESTED, "gamma", finding("gamma"), None))
    hurts = cause_sentence(Cause(CONTRADICTED, "gamma", finding("gamma"), rung("g", "gamma", "refuted", 0.1)))
    assert "but changing it alone hurts: Change g" in hurts


def test_the_base_sentence_says_when_changes_compared_against_more_of_its_seeds():
    from reports.render.html import base_sentence

    outcomes = {"converged": 1, "soft-diverged": 7}
    base = Base("b", "b.toml", False, 250, "", outcomes, (0.0,) * 8, 109.0, None, None, None)
    first_look = base_sentence(base)
    assert first_look.startswith("Of 8 seeds: 1 converged, 7 soft-diverged. Late return IQM 109;")
    on_demand = (rung("a", "gamma", "supported", seeds=16, base_iqm=106.0), rung("b", "loss", "inconclusive"))
    assert base_sentence(base, on_demand) == (
        first_look + " Changes settled with seeds on demand compare against it at up to 16 seeds (late return IQM 106 "
        "there)."
    )
    assert base_sentence(base, (rung("b", "loss", "inconclusive"),)) == first_look
