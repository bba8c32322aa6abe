import json

import numpy as np
import pytest
from scipy import stats

from reports.render.tables import claim_ledger, export_tables, improvement_matrix, seed_table, variant_summary
from reports.results import ReportError, load_results
from tests.reports.conftest import LATE


def test_seed_table_has_the_known_late_returns(results_dir):
    seeds = seed_table(load_results(results_dir))
    for variant, finals in LATE.items():
        assert seeds[seeds["variant"] == variant]["late_return"].tolist() == finals
    naive = seeds[seeds["variant"] == "article-naive"]
    assert naive["soft_diverged"].all()  # max |Q| 1e6 > 110
    assert naive["success"].tolist() == [False, False, False, True]  # late return >= 250


def test_variant_summary_known_answers(results_dir):
    summary = variant_summary(load_results(results_dir)).set_index("variant")
    assert summary.loc["article-naive", "late_return_iqm"] == pytest.approx(10.5)  # middle two of 9, 10, 11, 300
    assert summary.loc["article-target", "late_return_iqm"] == pytest.approx(250.0)
    assert summary.loc["article-target", "late_return_mean"] == pytest.approx(275.0)
    low, high = summary.loc["article-naive", ["late_return_iqm_low", "late_return_iqm_high"]]
    assert low <= 10.5 <= high
    # Success rate 1/4 with a Wilson interval equal to scipy's.
    ci = stats.binomtest(1, 4).proportion_ci(method="wilson")
    assert summary.loc["article-naive", "success_rate"] == 0.25
    assert summary.loc["article-naive", "success_low"] == pytest.approx(ci.low)
    assert summary.loc["article-naive", "success_high"] == pytest.approx(ci.high)
    assert summary.loc["article-naive", "soft_diverged_rate"] == 1.0


def test_improvement_matrix_is_antisymmetric(results_dir):
    matrix = improvement_matrix(load_results(results_dir))
    np.testing.assert_allclose(matrix.values + matrix.values.T, 1.0)
    # target [100, 200, 300, 500] vs naive [9, 10, 11, 300]: 100 and 200 beat three, 300 beats
    # three and ties one (half a pair), 500 beats all four.
    assert matrix.loc["article-target", "article-naive"] == pytest.approx((3 + 3 + 3.5 + 4) / 16)


def test_claim_ledger_keeps_the_claim_in_plain_words(results_dir):
    ledger = claim_ledger(load_results(results_dir))
    assert ledger["claim"].tolist() == [
        "test_claim[crashing]",
        "Experience replay improves on the <naive> agent & more.",
    ]
    assert ledger["verdict"].tolist() == ["error", "inconclusive"]
    assert ledger["metric"].tolist()[1] == "late greedy return"
    assert ledger["seeds_needed"].tolist()[1] == 17
    assert ledger["p_adjusted"].tolist()[1] == 0.3 and ledger["seeds_used"].tolist()[1] == 4
    assert ledger["error"].tolist()[0] == "KeyError: 'late_return'"


def test_tables_export_as_csv_and_parquet(results_dir, tmp_path):
    tables = export_tables(load_results(results_dir), tmp_path / "tables")
    for name in tables:
        assert (tmp_path / "tables" / f"{name}.csv").is_file()
        assert (tmp_path / "tables" / f"{name}.parquet").is_file()
    assert not list((tmp_path / "tables").glob(".*.tmp"))


@pytest.mark.parametrize(
    "damage,name",
    [
        ("remove-runs", "runs.parquet"),
        ("remove-meta", "meta.json"),
        ("corrupt-tests", "tests.parquet"),
        ("corrupt-meta", "meta.json"),
        ("empty-runs", "runs.parquet"),
        ("columns-runs", "runs.parquet"),
    ],
)
def test_bad_results_folders_raise_an_error_naming_the_file(results_dir, damage, name):
    import pandas as pd

    path = results_dir / name
    if damage.startswith("remove"):
        path.unlink()
    elif damage == "corrupt-meta":
        path.write_text("{")
    elif damage.startswith("corrupt"):
        path.write_bytes(b"not parquet")
    elif damage == "empty-runs":
        pd.read_parquet(path).iloc[:0].to_parquet(path)
    else:
        pd.read_parquet(path).drop(columns="eval_return").to_parquet(path)
    with pytest.raises(ReportError, match=name):
        load_results(results_dir)


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(ReportError, match="not a results folder"):
        load_results(tmp_path / "nowhere")


def test_meta_round_trips(results_dir):
    assert load_results(results_dir).meta == json.loads((results_dir / "meta.json").read_text())
