"""Triage: the rungs that would fix what lint flags and the runs show, in priority order."""

import inspect
import re

import pytest

import reports.diagnosis.symptoms
from agents.catalogue.presets import VARIANTS, get_variant
from agents.config import AgentConfig
from agents.diagnosis.ladder import one_knob_ladder
from agents.diagnosis.lint import lint
from agents.diagnosis.triage import RULE_RUNGS, SYMPTOM_RUNGS, triage
from tests.test_lint import DEFECTS, HEALTHY

# Rules no rung of the ladder tests: nothing to train first for them.
NO_RUNG = {"small-buffer", "long-n-step", "no-evaluation"}


@pytest.mark.parametrize(("rule", "defect", "field", "inside"), DEFECTS, ids=[f"{d[0]}-{d[2]}" for d in DEFECTS])
def test_the_first_rung_triage_names_for_a_finding_is_in_the_ladder_and_changes_its_field(rule, defect, field, inside):
    config = HEALTHY.replace(**defect)
    (finding,) = [f for f in lint(config) if f.rule == rule]
    rungs = {r.key: r for r in one_knob_ladder(config)[0]}
    keys = triage([finding], available=rungs)
    if rule in NO_RUNG:
        assert keys == []
    elif rule == "sparse-exploration":
        # No rung fixes exploration (the finding says so); a longer run gives epsilon-greedy more chances.
        assert keys == ["steps-x4"]
    else:
        # The rung reports/diagnosis/cause.py reads the finding against: it changes the flagged field.
        assert keys and field in rungs[keys[0]].fields, (keys, rungs[keys[0]].fields if keys else None)


def test_the_time_limit_bias_is_tested_by_its_rung():
    config = HEALTHY.replace(bootstrap_on_truncation=False)
    rungs = {r.key: r for r in one_knob_ladder(config)[0]}
    assert triage(lint(config), available=rungs) == ["bootstrap-on-truncation"]
    assert rungs["bootstrap-on-truncation"].fields == ("bootstrap_on_truncation",)


def test_pointless_and_broken_first_then_symptoms_then_secondary_each_rung_once():
    config = HEALTHY.replace(bootstrap_on_truncation=False, learning_rate=0.5, total_env_steps=12_000)
    findings = lint(config)
    assert triage(findings, ["hard-divergence"]) == [
        "steps-x4",  # short-budget: pointless
        "lr-x0.01",  # learning-rate, too large: breaks the values
        "lr-x0.1",
        "target",  # hard-divergence (lr-x0.1 already listed)
        "huber",
        "clip",
        "terminal-masking",
        "gamma-0.9",
        "bootstrap-on-truncation",  # time-limit-terminal: secondary
    ]
    # The recorded findings (to_dict, as meta.json holds them) triage the same.
    assert triage([f.to_dict() for f in findings], ["hard-divergence"]) == triage(findings, ["hard-divergence"])
    # Only what the ladder has, when given.
    assert triage(findings, ["hard-divergence"], available={"huber", "bootstrap-on-truncation", "other"}) == [
        "huber",
        "bootstrap-on-truncation",
    ]
    assert triage([], []) == []
    assert triage(lint(HEALTHY.replace(learning_rate=1e-6))) == ["lr-x10", "lr-x3"]


def test_an_unknown_symptom_is_a_one_line_error():
    with pytest.raises(ValueError, match="symptoms='divergence' is invalid: one of no-update, "):
        triage([], ["divergence"])


def test_the_symptom_names_are_the_reports_and_every_mapped_key_is_a_rung_some_ladder_has():
    names = set(re.findall(r'Symptom\(\s*"([a-z-]+)"', inspect.getsource(reports.diagnosis.symptoms)))
    assert set(SYMPTOM_RUNGS) == names
    bases = [get_variant(name).config for name in VARIANTS] + [HEALTHY.replace(**d) for _, d, _, _ in DEFECTS]
    bases += [AgentConfig(env_steps_per_update=1, gradient_steps=8), AgentConfig(env_steps_per_update=10)]
    keys = {r.key for base in bases for r in one_knob_ladder(base)[0]}
    mapped = {k for ks in (*RULE_RUNGS.values(), *SYMPTOM_RUNGS.values()) for k in ks}
    assert mapped <= keys, mapped - keys


def test_every_lint_rule_has_a_triage_entry():
    # DEFECTS exercises every rule (tests/test_lint.py); no-update, learning-rate and the bugs are mapped by code.
    rules = {rule for rule, *_ in DEFECTS if rule not in ("no-update", "learning-rate") and not rule.startswith("bug-")}
    assert rules <= set(RULE_RUNGS), rules - set(RULE_RUNGS)
