"""The report's attribution of the example 1 -> 3 gap: from every seed all 16 cells ran, or from
the attribution claim's record where a cell is missing."""

import pytest

from reports.analysis import factorial
from reports.render.html import build_report
from reports.render.tables import attribution
from reports.results import load_results


def test_attribution_uses_every_seed_all_cells_ran_and_no_other(factorial_results):
    cells = set(factorial.ARTICLE_CELLS)
    table = attribution(load_results(factorial_results(cells, extra_seed_cells=set(list(cells)[1:]))))
    late = table[table["metric"] == "late_return"].set_index(["kind", "name"])
    # Shapley values split the interaction evenly: masking 100 + 10/2, replay 30 + 10/2.
    assert late.loc[("gap", "all on - all off"), "estimate"] == pytest.approx(140.0)
    assert late.loc[("shapley", "terminal_masking"), "estimate"] == pytest.approx(105.0)
    assert late.loc[("shapley", "replay"), "estimate"] == pytest.approx(35.0)
    assert late.loc[("shapley", "terminal_masking"), "share"] == pytest.approx(0.75)
    assert late.loc[("shapley", "target_network"), "estimate"] == pytest.approx(0.0)
    assert set(table["seeds"]) == {4} and set(table["source"]) == {"runs"}


def test_attribution_falls_back_to_the_claims_record_when_a_cell_is_missing(factorial_results):
    cells = set(factorial.ARTICLE_CELLS[1:])
    table = attribution(load_results(factorial_results(cells, extra_seed_cells=set())))
    assert table[["metric", "kind", "estimate", "seeds", "source"]].to_dict("records") == [
        {"metric": "late_return", "kind": "gap", "estimate": 416.0, "seeds": 20, "source": "claim"}
    ]


def test_the_report_says_how_many_seeds_the_attribution_used(factorial_results):
    cells = set(factorial.ARTICLE_CELLS)
    report = build_report(factorial_results(cells, extra_seed_cells=cells - {factorial.ARTICLE_CELLS[0]}))
    text = report.read_text()
    assert '<span id="attribution-seeds">4 seeds per cell, every seed all 16 cells ran</span>' in text
