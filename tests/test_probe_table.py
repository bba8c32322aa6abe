"""`dqn-ablations probe-table`: rows found from the examples' declared causes, each battery run,
the cause named first read against the expected one, files written and read again. The examples
here are oracles (they return a closed-form Q without training), so the verdicts are known."""

from __future__ import annotations

import pandas as pd
import pytest

from ablations.cli import main as cli_main
from ablations.probe_table import EXPECTED_TO_CAUSES, declared_expectations, example_rows, main

ORACLE = """\
import numpy as np

from agents.probes import expected_q

EXPECTED_CAUSE = {expected!r}


def train(env, total_steps, seed):
    probe, n = env.unwrapped.probe, env.action_space.n
    q = probe.alternatives(0.99, n).get({rule!r}) if {rule!r} else None
    q = expected_q(probe, 0.99, n) if q is None else q
    codes = np.array(probe.codes)
    return lambda obs: q[np.abs(np.asarray(obs).reshape(len(obs), -1)[:, :1] - codes[None]).argmin(1)]
"""


@pytest.fixture
def examples(tmp_path):
    folder = tmp_path / "byo"
    (folder / "buggy").mkdir(parents=True)
    (folder / "ok.py").write_text(ORACLE.format(expected=None, rule=None))
    (folder / "buggy" / "unmasked.py").write_text(ORACLE.format(expected="terminal_not_masked", rule="unmasked"))
    (folder / "helper.py").write_text("X = 1\n")  # declares nothing: not a row
    return folder


def test_rows_come_from_the_declared_causes_read_without_running_the_files(examples, tmp_path):
    assert [(r.label, r.expected) for r in example_rows(examples)] == [
        ("ok.py:train", None),
        ("buggy/unmasked.py:train", "terminal_not_masked"),
    ]
    two = tmp_path / "two.py"
    two.write_text('raise SystemExit\nEXPECTED_CAUSES = {"train": None, "train_bad": "wrong_discount"}\n')
    assert declared_expectations(two) == {"train": None, "train_bad": "wrong_discount"}
    assert all(cause in EXPECTED_TO_CAUSES for cause in ("terminal_not_masked", "too_few_updates"))


def test_the_table_names_the_expected_cause_first_and_rereads_without_training(examples, tmp_path, capsys):
    out = tmp_path / "table"
    assert main(["--examples", str(examples), "--out", str(out), "--seeds", "2"]) == 0
    rows = pd.read_parquet(out / "rows.parquet").set_index("row")
    assert rows.loc["ok.py:train", "expected_verdict"] == "no bug: passes"
    assert rows.loc["buggy/unmasked.py:train", "expected_verdict"] == "named first"
    assert rows.loc["buggy/unmasked.py:train", "cause_named_first"] == "unmasked"
    assert (rows["cpu_s"] >= 0).all() and (rows["wall_s"] > 0).all()
    cells = pd.read_parquet(out / "cells.parquet")
    last_step = cells.query("row == 'buggy/unmasked.py:train' and probe == 'LastStep'").iloc[0]
    assert last_step["status"] == "fail-every-seed" and last_step["causes"].startswith("unmasked")
    text = (out / "tables.md").read_text()
    assert "| buggy/unmasked.py:train | **FAIL 2/2** unmasked |" in text
    before = pd.read_parquet(out / "results.parquet")
    capsys.readouterr()
    assert main(["--examples", str(examples), "--out", str(out), "--reread"]) == 0
    assert "named first" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), before)
    # A finished row is not run again; --only keeps the other rows in the files.
    assert main(["--examples", str(examples), "--out", str(out), "--only", "ok.py"]) == 0
    assert len(pd.read_parquet(out / "rows.parquet")) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--examples", "no/such/folder"], "error: --examples='no/such/folder' is invalid: no such folder"),
        (["--seeds", "0"], "error: --seeds=0 is invalid: must be >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert cli_main(["probe-table", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_an_undeclared_expected_cause_is_bad_input(tmp_path, capsys):
    (tmp_path / "x.py").write_text('EXPECTED_CAUSE = "nope"\n')
    assert main(["--examples", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "expected cause 'nope' is invalid" in capsys.readouterr().err
