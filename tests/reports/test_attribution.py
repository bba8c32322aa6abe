"""The report's attribution of the example 1 -> 3 gap: from every seed all 16 cells ran, or from
the attribution claim's record where a cell is missing."""

import json

import pandas as pd
import pytest

from agents.presets import FACTORIAL_KNOBS, factorial_variant
from reports import factorial
from reports.aggregate import attribution, load_results
from reports.html import build_report

MASK, REPLAY = FACTORIAL_KNOBS.index("terminal_masking"), FACTORIAL_KNOBS.index("replay")
COMMON_SEEDS = 4


def _cell_return(levels: tuple[bool, ...]) -> float:
    """Late return of every common seed of a cell: masking +100, replay +30, both together +10 more."""
    return 100.0 * levels[MASK] + 30.0 * levels[REPLAY] + 10.0 * levels[MASK] * levels[REPLAY]


def _folder(tmp_path, cells, extra_seed_cells, recorded_n=20):
    """A results folder with the given cells at seeds 0-3; cells in extra_seed_cells also hold
    seeds 4 and 5 at a return that would move every estimate if they were counted."""
    rows = []
    for levels in factorial.cells(len(FACTORIAL_KNOBS)):
        variant = factorial_variant(*levels)
        if variant not in cells:
            continue
        seeds = range(COMMON_SEEDS + 2) if variant in extra_seed_cells else range(COMMON_SEEDS)
        for seed in seeds:
            value = _cell_return(levels) if seed < COMMON_SEEDS else 10_000.0
            for step in range(200, 1001, 200):
                rows.append(
                    {
                        "variant": variant,
                        "seed": seed,
                        "env_step": step,
                        "eval_return": value,
                        "max_abs_q": 1.0,
                        "td_target_var": 1.0,
                        "td_error_var": 1.0,
                        "state_autocorrelation": 0.5,
                        "diverged": False,
                        "diverged_step": -1,
                    }
                )
    recorded = {
        "late_return": [
            {"kind": "gap", "name": "all on - all off", "estimate": 416.0, "ci_low": 402.0, "ci_high": 428.0}
        ]
    }
    tests = pd.DataFrame(
        [
            {
                "node_id": "ablations/test_claims.py::test_claim[failure-is-missing-stabilisers]",
                "test": "test_claim[failure-is-missing-stabilisers]",
                "property": "claims",
                "claim": "The failure is the missing stabilisers.",
                "variants": ",".join(factorial.ARTICLE_CELLS),
                "statistic": "phi(replay) + phi(target) - phi(mask)",
                "effect_size": -274.0,
                "ci_low": -298.0,
                "ci_high": -249.0,
                "p_value": 1.0,
                "p_adjusted": 1.0,
                "seeds_needed": None,
                "duration_s": 1.0,
                "verdict": "refuted",
                "outcome": "xfailed",
                "n": recorded_n,
                "details": json.dumps({"attribution": recorded}),
            }
        ]
    )
    folder = tmp_path / "results"
    folder.mkdir()
    pd.DataFrame(rows).to_parquet(folder / "runs.parquet", index=False)
    tests.to_parquet(folder / "tests.parquet", index=False)
    (folder / "meta.json").write_text(
        json.dumps(
            {
                "profile": "hand-made",
                "env_id": "CartPole-v1",
                "seeds": [0, 1, 2, 3, 4, 5],
                "env_steps": 1000,
                "command_line": "pytest ablations",
            }
        )
    )
    return folder


def test_attribution_uses_every_seed_all_cells_ran_and_no_other(tmp_path):
    cells = set(factorial.ARTICLE_CELLS)
    table = attribution(load_results(_folder(tmp_path, cells, extra_seed_cells=set(list(cells)[1:]))))
    late = table[table["metric"] == "late_return"].set_index(["kind", "name"])
    # Shapley values split the interaction evenly: masking 100 + 10/2, replay 30 + 10/2.
    assert late.loc[("gap", "all on - all off"), "estimate"] == pytest.approx(140.0)
    assert late.loc[("shapley", "terminal_masking"), "estimate"] == pytest.approx(105.0)
    assert late.loc[("shapley", "replay"), "estimate"] == pytest.approx(35.0)
    assert late.loc[("shapley", "terminal_masking"), "share"] == pytest.approx(0.75)
    assert late.loc[("shapley", "target_network"), "estimate"] == pytest.approx(0.0)
    assert set(table["seeds"]) == {COMMON_SEEDS} and set(table["source"]) == {"runs"}


def test_attribution_falls_back_to_the_claims_record_when_a_cell_is_missing(tmp_path):
    cells = set(factorial.ARTICLE_CELLS[1:])
    table = attribution(load_results(_folder(tmp_path, cells, extra_seed_cells=set())))
    assert table[["metric", "kind", "estimate", "seeds", "source"]].to_dict("records") == [
        {"metric": "late_return", "kind": "gap", "estimate": 416.0, "seeds": 20, "source": "claim"}
    ]


def test_the_report_says_how_many_seeds_the_attribution_used(tmp_path):
    cells = set(factorial.ARTICLE_CELLS)
    report = build_report(_folder(tmp_path, cells, extra_seed_cells=cells - {factorial.ARTICLE_CELLS[0]}))
    text = report.read_text()
    assert '<span id="attribution-seeds">4 seeds per cell, every seed all 16 cells ran</span>' in text
