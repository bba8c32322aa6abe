"""The claims x environments page: one results folder per env, verdicts side by side."""

import json
import shutil

import pandas as pd
import pytest

from reports.analysis import factorial
from reports.cli import main
from reports.render.across import attribution_by_env, claims_by_env, env_reach
from reports.results import ReportError, load_results


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


def test_each_env_says_how_many_runs_ever_reach_its_threshold(results_dir, tmp_path):
    # The hand-made runs on CartPole-v1 (threshold 250): best checkpoints 80, 80, 80, 300 for
    # article-naive and 100, 200, 300, 500 for article-target; late returns are the finals.
    cartpole = load_results(on_env(results_dir, tmp_path, "CartPole-v1", "supported"))
    assert env_reach(cartpole) == {"threshold": 250.0, "runs": 8, "best": 3, "late": 3}
    # The same runs 1,000 lower on MountainCar-v0 (threshold -110): none ever gets there.
    folder = on_env(results_dir, tmp_path, "MountainCar-v0", "inconclusive")
    runs = pd.read_parquet(folder / "runs.parquet")
    runs["eval_return"] -= 1000.0
    runs.to_parquet(folder / "runs.parquet", index=False)
    assert env_reach(load_results(folder)) == {"threshold": -110.0, "runs": 8, "best": 0, "late": 0}
    out = tmp_path / "across.html"
    assert main([str(on_env(results_dir, tmp_path, "Acrobot-v1", "supported")), str(folder), "-o", str(out)]) == 0
    html = out.read_text()
    assert "On MountainCar-v0 no run\nof any variant ever reached the success threshold" in html
    assert "On Acrobot-v1 no run" not in html


def test_the_attribution_sits_per_env_where_an_env_has_the_factorial(results_dir, factorial_results, tmp_path):
    cells = set(factorial.ARTICLE_CELLS)
    folders = [factorial_results(cells, set()), on_env(results_dir, tmp_path, "Acrobot-v1", "supported")]
    frame = attribution_by_env([load_results(f) for f in folders])
    # The hand-made Acrobot folder has two variants, not the 16 cells: it has no rows.
    assert set(frame["env_id"]) == {"CartPole-v1"}
    shapley = frame.set_index("name")["estimate"]
    assert shapley["terminal_masking"] == pytest.approx(105.0) and shapley["all on - all off"] == pytest.approx(140.0)
    out = tmp_path / "across.html"
    assert main([str(f) for f in folders] + ["-o", str(out)]) == 0
    assert 'id="attribution-by-env"' in out.read_text()
