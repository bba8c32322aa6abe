import json
import subprocess

import pandas as pd
import pytest

from agents.catalogue.presets import get_variant
from agents.engine.loop import train
from agents.results import ResultsError, RunResult


@pytest.fixture(scope="module")
def result():
    config = get_variant("article-target").config.replace(total_env_steps=600, eval_period=300, eval_episodes=1)
    return RunResult.from_record("article-target", train(config, [0, 1]))


def test_tidy_frame_has_one_row_per_seed_and_checkpoint(result):
    frame = result.checkpoints
    assert len(frame) == 4
    assert not frame.duplicated(["seed", "env_step"]).any()
    for column in (
        "variant",
        "seed",
        "env_step",
        "gradient_updates",
        "eval_return",
        "max_abs_q",
        "mean_q",
        "loss",
        "td_target_mean",
        "td_target_var",
        "grad_norm",
        "target_distance",
        "target_lag_updates",
        "target_lag_env_steps",
        "replay_fill",
        "mean_sample_age",
        "state_autocorrelation",
        "terminal_fraction",
        "diverged",
        "diverged_step",
    ):
        assert column in frame.columns, column
    assert set(result.final()["env_step"]) == {600}


def test_meta_records_config_versions_and_time(result):
    meta = result.meta
    assert meta["config_hash"] == result.config.content_hash()
    assert meta["seeds"] == [0, 1]
    assert meta["package_versions"]["torch"].startswith("2.")
    assert meta["wall_time_s"] > 0
    assert len(meta["code_version"]) == 16


def test_save_and_load_round_trip(result, tmp_path):
    directory = result.save(tmp_path / "run")
    loaded = RunResult.load(directory)
    pd.testing.assert_frame_equal(loaded.checkpoints, result.checkpoints)
    pd.testing.assert_frame_equal(loaded.episodes, result.episodes)
    assert loaded.config == result.config and loaded.meta == json.loads(json.dumps(result.meta))
    assert sorted(p.name for p in directory.iterdir()) == ["checkpoints.parquet", "episodes.parquet", "meta.json"]
    # Saving again replaces the run atomically and leaves no staging directories behind.
    result.save(tmp_path / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_interrupted_save_leaves_nothing_behind(result, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(KeyboardInterrupt):
        result.save(tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["delete-meta", "corrupt-meta", "delete-parquet", "corrupt-parquet", "wrong-seeds"])
def test_damaged_runs_raise_an_error_naming_the_file(result, tmp_path, damage):
    directory = result.save(tmp_path / "run")
    if damage == "delete-meta":
        (directory / "meta.json").unlink()
        name = "meta.json"
    elif damage == "corrupt-meta":
        (directory / "meta.json").write_text("{not json")
        name = "meta.json"
    elif damage == "delete-parquet":
        (directory / "episodes.parquet").unlink()
        name = "episodes.parquet"
    elif damage == "corrupt-parquet":
        path = directory / "checkpoints.parquet"
        path.write_bytes(path.read_bytes()[:100])
        name = "checkpoints.parquet"
    else:
        meta = json.loads((directory / "meta.json").read_text())
        meta["seeds"] = [0, 1, 2]
        (directory / "meta.json").write_text(json.dumps(meta))
        name = "checkpoints.parquet"
    with pytest.raises(ResultsError, match=name):
        RunResult.load(directory)


def test_git_commit_is_the_one_a_process_started_on(monkeypatch):
    # A session that trains for an hour must not record a commit made while it trained.
    import agents.results as results_module

    heads = iter(["a" * 40, "b" * 40])

    def fake_run(*args, **kwargs):
        return subprocess.CompletedProcess(args, 0, stdout=next(heads) + "\n", stderr="")

    results_module.git_commit.cache_clear()
    monkeypatch.setattr(results_module.subprocess, "run", fake_run)
    try:
        assert results_module.git_commit() == "a" * 40
        assert results_module.git_commit() == "a" * 40
    finally:
        results_module.git_commit.cache_clear()
