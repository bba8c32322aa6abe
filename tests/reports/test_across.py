"""The claims x environments page: one results folder per env, verdicts side by side."""

import json
import shutil

import pandas as pd
import pytest

from reports.__main__ import main
from reports.across import claims_by_env
from reports.aggregate import ReportError, load_results


def on_env(results_dir, tmp_path, env_id: str, verdict: str):
    """A copy of the hand-made results folder, as if run on env_id, its first claim's verdict set."""
    folder = tmp_path / env_id
    shutil.copytree(results_dir, folder)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "env_id": env_id}))
    tests = pd.read_parquet(folder / "tests.parquet")
    tests.loc[0, "verdict"] = verdict
    tests.to_parquet(folder / "tests.parquet", index=False)
    return folder


def test_claims_sit_side_by_side_per_env(results_dir, tmp_path):
    folders = [
        on_env(results_dir, tmp_path, "CartPole-v1", "supported"),
        on_env(results_dir, tmp_path, "Acrobot-v1", "refuted"),
    ]
    frame = claims_by_env([load_results(f) for f in folders])
    claims = pd.read_parquet(results_dir / "tests.parquet").query("property == 'claims'")
    assert len(frame) == 2 * len(claims)
    first = frame[frame["claim"] == claims.iloc[0]["claim"]].set_index("env_id")
    assert first.loc["CartPole-v1", "verdict"] == "supported" and first.loc["Acrobot-v1", "verdict"] == "refuted"
    assert (frame["verdict"] == "error").sum() == 2  # the crashed claim stays an error on both envs


def test_the_page_is_written_and_one_env_twice_is_refused(results_dir, tmp_path):
    a = on_env(results_dir, tmp_path, "CartPole-v1", "supported")
    b = on_env(results_dir, tmp_path, "Acrobot-v1", "refuted")
    out = tmp_path / "across.html"
    assert main([str(a), str(b), "-o", str(out)]) == 0
    html = out.read_text()
    assert 'id="claims-by-env"' in html and "data:image/png;base64," in html and "Acrobot-v1" in html
    assert "&lt;naive&gt;" in html  # result text is escaped
    assert len(pd.read_csv(out.with_suffix(".csv"))) == 2 * 2
    with pytest.raises(ReportError, match="same env"):
        claims_by_env([load_results(a), load_results(a)])
