"""The path-equivalence comparison's statistics and command (ablations/path_equivalence.py)."""

import json

import numpy as np

from ablations.path_equivalence import LATE_RETURN_MARGIN, compare, main, outcome_equivalence, tost_means


def test_tost_shows_equal_means_equivalent_and_a_shift_beyond_the_margin_not():
    rng = np.random.default_rng(0)
    x, y = rng.normal(200, 20, 400), rng.normal(200, 20, 400)
    assert tost_means(x, y, LATE_RETURN_MARGIN)["equivalent"]
    assert not tost_means(x + 2 * LATE_RETURN_MARGIN, y, LATE_RETURN_MARGIN)["equivalent"]
    # Too few seeds for their spread: not shown equivalent even with equal means.
    assert not tost_means(rng.normal(200, 150, 3), rng.normal(200, 150, 3), LATE_RETURN_MARGIN)["equivalent"]


def test_outcome_rates_within_the_margin_only_with_enough_seeds():
    assert outcome_equivalence(np.ones(200, bool), np.ones(200, bool), 0.1)["equivalent"]
    assert not outcome_equivalence(np.ones(20, bool), np.zeros(20, bool), 0.35)["equivalent"]
    assert not outcome_equivalence(np.ones(3, bool), np.ones(3, bool), 0.35)["equivalent"]


def test_compare_reads_each_outcome_the_summaries_have():
    exact = {"late_return": [100.0, 120.0, 90.0], "success": [True, False, False]}
    verdict = compare(exact, {"late_return": [110.0, 95.0, 100.0], "success": [False, False, True]})
    assert set(verdict) == {"late_return", "success"}


def test_the_command_trains_every_path_and_writes_verdicts(tmp_path, capsys):
    out = tmp_path / "eq"
    args = ["--seeds", "2", "--steps", "300", "--paths", "exact,fast", "--out", str(out)]
    assert main(args) == 0
    assert set(json.loads((out / "verdicts.json").read_text())) == {"fast"}
    assert "fast - exact, late return" in capsys.readouterr().out
    assert main(["--paths", "exact,turbo", "--out", str(out)]) == 2
    assert "--paths='exact,turbo' is invalid" in capsys.readouterr().err
