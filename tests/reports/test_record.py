"""The diagnosis record: it round-trips through its own type, reads a results folder's rows back,
and is the only place a diagnosis key is spelled."""

import ast
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reports.analysis.metrics import SEED_OUTCOMES
from reports.analysis.stats import Verdict
from reports.diagnosis.record import (
    BASE_PROPERTY,
    RUNG_PROPERTY,
    SCHEMA_VERSION,
    Base,
    Diagnosis,
    LintLine,
    RepairPath,
    RepairStep,
    Rung,
    SeedFigures,
    SymptomLine,
    rung_evidence,
)
from reports.results import ReportError, Results

ROOT = Path(__file__).resolve().parents[2]
finite = st.floats(-1e6, 1e6, allow_nan=False)
maybe = st.none() | finite
names = st.text("abcdefgh-_", min_size=1, max_size=12)


@st.composite
def figures(draw) -> SeedFigures:
    seeds = draw(st.integers(0, 40))
    return SeedFigures(draw(maybe), draw(maybe), draw(st.integers(0, seeds)), seeds,
                       draw(st.dictionaries(st.sampled_from(SEED_OUTCOMES), st.integers(0, 40))))  # fmt: skip


rungs = st.builds(
    Rung,
    rung=names,
    change=st.text(max_size=30),
    verdict=st.sampled_from(list(Verdict)),
    effect_size=st.none() | st.floats(0, 1),
    ci_low=maybe,
    ci_high=maybe,
    p_value=st.none() | st.floats(0, 1),
    p_adjusted=st.none() | st.floats(0, 1),
    seeds_used=st.none() | st.integers(0, 80),
    seeds_needed=st.none() | st.integers(0, 500),
    fields=st.lists(names, max_size=3).map(tuple),
    base=st.none() | figures(),
    with_change=st.none() | figures(),
    error=st.none() | st.text(min_size=1, max_size=20),
    conditional_power=st.none() | st.floats(0, 1),
)
lint_lines = st.builds(LintLine, names, names, st.text(max_size=8), st.text(max_size=20), st.text(max_size=20),
                       st.none() | st.integers(1, 3), st.none() | st.text(max_size=10))  # fmt: skip
bases = st.builds(
    Base,
    variant=names,
    config_file=st.text(max_size=20),
    trains=st.booleans(),
    success_threshold=finite,
    success_source=st.text(max_size=20),
    outcomes=st.dictionaries(st.sampled_from(SEED_OUTCOMES), st.integers(0, 40)),
    late_returns=st.lists(maybe, max_size=8).map(tuple),
    late_return_iqm=maybe,
    share_converged=st.none() | st.floats(0, 1),
    share_low=st.none() | st.floats(0, 1),
    share_high=st.none() | st.floats(0, 1),
    lint=st.lists(lint_lines, max_size=3).map(tuple),
    symptoms=st.lists(st.builds(SymptomLine, names, st.text(max_size=20), st.integers(0, 8), st.integers(0, 8),
                                st.dictionaries(names, finite, max_size=2)), max_size=2).map(tuple),  # fmt: skip
    skipped_rungs=st.lists(st.text(max_size=10), max_size=2).map(tuple),
    bugs_in_config=st.lists(names, max_size=2).map(tuple),
)
steps = st.builds(RepairStep, round=st.integers(1, 4), config_file=names, results=names, trains=st.booleans(),
                  learned=st.integers(0, 8), seeds=st.integers(0, 8), late_return_iqm=maybe)  # fmt: skip
diagnoses = st.builds(
    Diagnosis,
    base=bases,
    rungs=st.lists(rungs, max_size=4).map(tuple),
    repair=st.none() | st.builds(RepairPath, names, st.none() | names, st.lists(steps, max_size=2).map(tuple)),
)


A_BASE = Base("mine", "mine.toml", False, 250.0, "suite", {"converged": 0}, (9.0,), 9.0, 0.0, 0.0, 0.5)


@given(diagnoses)
def test_a_diagnosis_round_trips_through_json(diagnosis):
    again = Diagnosis.from_dict(json.loads(diagnosis.to_json()))
    assert again == diagnosis
    assert again.to_json() == diagnosis.to_json()


def test_rungs_are_ranked_most_helpful_first_and_crashes_last():
    base = SeedFigures(10.0, None, 0, 8)

    def rung(key, p, iqm):
        return Rung(key, key, Verdict.INCONCLUSIVE if p is not None else Verdict.ERROR, effect_size=p, base=base,
                    with_change=None if iqm is None else SeedFigures(iqm, None, 0, 8))  # fmt: skip

    record = Diagnosis(A_BASE, (rung("crash", None, None), rung("b", 0.7, 20.0), rung("a", 0.7, 30.0)))
    assert [r.rung for r in record.rungs] == ["a", "b", "crash"]


def test_a_record_of_another_schema_is_refused_by_name():
    with pytest.raises(ValueError, match="schema_version=2 is invalid"):
        Diagnosis(A_BASE, schema_version=SCHEMA_VERSION + 1)


def test_a_results_folder_reads_back_into_the_record(tmp_path):
    finding = {"rule": "no-target", "field": "target_network", "value": "'none'", "why": "w", "fix": "f",
               "order": 2, "order_class": "breaks the values"}  # fmt: skip
    base_details = {"base_variant": "mine", "config_file": "mine.toml", "success_threshold": 250.0,
                    "success_source": "suite", "outcomes": {"converged": 1, "soft-diverged": 7},
                    "late_returns": [9.0] * 7 + [300.0], "late_return_iqm": 9.0, "skipped_rungs": [],
                    "lint": [finding], "symptoms": [], "bugs_in_config": [], "bug_matches": []}  # fmt: skip
    sides = SeedFigures(9.0, 9.0, 1, 8, {"converged": 1}), SeedFigures(300.0, 300.0, 7, 8)
    evidence = rung_evidence("target", "Add a target network", "mine", "mine+target", 250.0, *sides)
    tests = pd.DataFrame(
        [
            {"node_id": "t::test_base_learns", "test": "test_base_learns", "property": BASE_PROPERTY,
             "claim": None, "verdict": None, "effect_size": 0.125, "ci_low": 0.02, "ci_high": 0.47, "p_value": None,
             "p_adjusted": None, "seeds_needed": None, "outcome": "failed", "details": json.dumps(base_details)},
            {"node_id": "t::test_change[target]", "test": "test_change[target]", "property": RUNG_PROPERTY,
             "claim": "c", "verdict": "supported", "effect_size": 0.98, "ci_low": 0.9, "ci_high": 1.0,
             "p_value": 0.001, "p_adjusted": 0.004, "seeds_needed": float("nan"), "outcome": "passed",
             "details": json.dumps(evidence)},
        ]
    )  # fmt: skip
    configs = {"mine": {"config": {"target_network": "none"}}, "mine+target": {"config": {"target_network": "hard"}}}
    results = Results(tmp_path, pd.DataFrame(), tests, pd.DataFrame(), {"variants": configs})
    record = Diagnosis.from_results(results)
    assert record.base.variant == "mine" and not record.base.trains and record.base.converged == 1
    assert record.base.lint[0].field == "target_network" and record.base.share_converged == 0.125
    (rung,) = record.rungs
    assert (rung.verdict, rung.fields, rung.seeds_needed, rung.gain) == (Verdict.SUPPORTED, ("target_network",),
                                                                         None, 291.0)  # fmt: skip
    assert record.repair is None
    assert Diagnosis.from_dict(json.loads(record.to_json())) == record
    assert list(record.table()["rung"]) == ["target"]
    empty = Results(tmp_path, pd.DataFrame(), tests.iloc[1:], pd.DataFrame(), {})
    assert Diagnosis.from_results(empty) is None
    assert Diagnosis.load(results) == record
    with pytest.raises(ReportError, match=f"{tmp_path}: the session recorded no diagnosis"):
        Diagnosis.load(empty)


# Keys only a diagnosis record carries: spelled in record.py alone (the writer and every reader
# go through its types).
RECORD_KEYS = {"base_variant", "rung_variant", "with_change", "bug_matches", "bugs_in_config", "diagnosis-base",
               "share_converged", "skipped_rungs"}  # fmt: skip


@pytest.mark.parametrize("package", ["reports", "ablations"])
def test_no_product_module_spells_a_diagnosis_key_outside_the_record(package):
    spelled = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        if path.name == "record.py" or path.name.startswith("test_"):
            continue
        strings = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)}
        if strings & RECORD_KEYS:
            spelled[path.relative_to(ROOT).as_posix()] = sorted(strings & RECORD_KEYS)
    assert spelled == {}
