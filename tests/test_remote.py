"""The Ray executor: task planning (exact, no Ray needed), then on a local Ray instance the same
runs bit for bit as the local executor, a killed worker's task retried, and clear errors."""

import importlib.util
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ablations.runs import remote
from ablations.runs.cache import RunCache
from ablations.settings import AblationSettings, _executor
from agents.catalogue.presets import get_variant
from tests.test_ablation_suite import ABLATIONS, SESSION_KEYS, run_suite

# Keys of a cached run's meta.json that say how, where and how fast it trained.
RUN_TIMING_KEYS = {"wall_time_s", "train_seconds", "family_seeds", "session_id", "cache_paths", "git_commit"}


def _entries(variant: str, *blocks: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    return [(variant, block) for block in blocks]


def test_task_size_gives_each_cpu_two_tasks_within_the_engines_efficient_batch_sizes():
    assert remote.task_size(1000, 4) == 64  # 125 wanted, capped
    assert remote.task_size(100, 4) == 13  # ceil(100 / 8)
    assert remote.task_size(20, 4) == 8  # 3 wanted, but batches under 8 seeds waste the engine
    with pytest.raises(ValueError, match="cpus=0 is invalid"):
        remote.task_size(10, 0)


def test_plan_tasks_packs_whole_entries_of_one_family_per_task_largest_first():
    family_a = _entries("a", (0, 1, 2), (3, 4, 5)) + _entries("b", (0, 1, 2))
    family_b = _entries("c", tuple(range(20)))
    # 29 seed-runs on 1 CPU: tasks of at most 15 seeds (ceil(29 / 2)).
    tasks = remote.plan_tasks([family_a, family_b], cpus=1)
    assert tasks == [(("c", tuple(range(20))),), tuple(family_a)]
    # On 2 CPUs: at most 8 seeds, so family a splits after two entries; c (20) stays whole.
    tasks = remote.plan_tasks([family_a, family_b], cpus=2)
    assert tasks == [(("c", tuple(range(20))),), tuple(family_a[:2]), tuple(family_a[2:])]
    assert remote.plan_tasks([], cpus=4) == []


@given(
    st.lists(st.lists(st.integers(1, 30), min_size=1, max_size=6), min_size=1, max_size=5),
    st.integers(1, 64),
)
def test_plan_tasks_trains_every_entry_exactly_once_and_never_mixes_families(sizes, cpus):
    families = [[(f"v{f}-{e}", tuple(range(n))) for e, n in enumerate(family)] for f, family in enumerate(sizes)]
    tasks = remote.plan_tasks(families, cpus)
    planned = [entry for task in tasks for entry in task]
    assert sorted(planned) == sorted(entry for family in families for entry in family)
    size = remote.task_size(sum(sum(family) for family in sizes), cpus)
    for task in tasks:
        assert len({name.split("-")[0] for name, _ in task}) == 1
        assert len(task) == 1 or sum(len(block) for _, block in task) <= size
    seeds = [sum(len(block) for _, block in task) for task in tasks]
    assert seeds == sorted(seeds, reverse=True)


def test_without_ray_the_executor_option_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(remote.RayUnavailable, match=r"pip install 'dqn-ablations\[ray\]'"):
        remote.import_ray()
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    options = {"ablation_executor": "ray", "ablation_ray_address": None}
    with pytest.raises(pytest.UsageError, match=r"needs Ray, which is not installed: pip install"):
        _executor(SimpleNamespace(getoption=options.__getitem__))


@pytest.mark.integration
def test_a_ray_address_without_the_ray_executor_is_a_usage_error(pytester):
    result = pytester.runpytest_subprocess(
        str(ABLATIONS), "--ablation-ray-address=10.0.0.1:6379", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--ablation-ray-address=10.0.0.1:6379 needs --ablation-executor=ray (it is local)" in result.stderr.str()


# CI installs the ray extra, so these run there; without Ray they say why they skipped.
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed ([ray] extra)")


def _settings(tmp_path: Path, name: str, steps: int = 300, seeds: int = 2) -> AblationSettings:
    return AblationSettings(
        profile="test",
        seeds=tuple(range(seeds)),
        env_steps=steps,
        env_id="CartPole-v1",
        out_dir=tmp_path / f"out-{name}",
        cache_dir=tmp_path / f"cache-{name}",
        rerun=False,
        write_report=False,
        session_id=name,
        executor="ray" if name.startswith("ray") else "local",
    )


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (this machine's CPUs) for the module's tests."""
    address = remote.connect(None)
    yield address
    remote.disconnect()


def _assert_same_entries(ray_cache: RunCache, local_cache: RunCache, names: list[str]) -> None:
    """Every cached entry (files on disk) equal, bit for bit, except how and where it trained."""
    for name in names:
        variant = get_variant(name)
        ray_dir, local_dir = ray_cache.path(variant), local_cache.path(variant)
        assert ray_dir.name == local_dir.name  # the same key
        for table in ("checkpoints.parquet", "episodes.parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(ray_dir / table), pd.read_parquet(local_dir / table))
        ray_meta, local_meta = (json.loads((d / "meta.json").read_text()) for d in (ray_dir, local_dir))
        for meta in (ray_meta, local_meta):
            for key in RUN_TIMING_KEYS:
                meta.pop(key, None)
        assert ray_meta == local_meta


@pytest.mark.integration
@needs_ray
def test_runs_trained_on_ray_equal_local_runs_bit_for_bit(local_ray, tmp_path):
    # Two families (no replay: naive, masked, target-only; replay: replay, target), so tasks
    # hold several entries of one family and the families go to different tasks.
    names = ["article-naive", "naive-masked", "target-only", "article-replay", "article-target"]
    ray_cache = RunCache(_settings(tmp_path, "ray"), remote.RayExecutor(local_ray))
    ray_cache.prefetch(names, None)
    assert sorted(ray_cache.trained_here) == sorted(names)
    local_cache = RunCache(_settings(tmp_path, "local"))
    local_cache.prefetch(names, None)
    _assert_same_entries(ray_cache, local_cache, names)
    # Served from the cache the second time: nothing goes to Ray.
    again = RunCache(_settings(tmp_path, "ray"), remote.RayExecutor(local_ray))
    again.prefetch(names, None)
    assert again.trained_here == []


def _task_workers() -> list[int]:
    """PIDs of Ray worker processes running train_share (Ray titles them ray::<task name>)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::train_share"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.integration
@needs_ray
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds Ray's worker processes through /proc")
def test_a_worker_killed_mid_task_has_its_task_retried_and_the_results_are_complete(local_ray, tmp_path):
    killed: list[int] = []
    stop = threading.Event()

    def kill_first_task_worker() -> None:
        while not stop.is_set() and not killed:
            for pid in _task_workers():
                time.sleep(0.5)  # let it get into training, then kill it as an OOM killer would
                if pid in _task_workers():  # still in the task (not finished and idle)
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                break
            time.sleep(0.05)

    names = ["article-replay"]
    killer = threading.Thread(target=kill_first_task_worker, daemon=True)
    killer.start()
    try:
        ray_cache = RunCache(_settings(tmp_path, "ray", steps=2_000), remote.RayExecutor(local_ray))
        ray_cache.prefetch(names, None)
    finally:
        stop.set()
        killer.join()
    assert killed, "no Ray worker was caught in the middle of the task, so nothing was killed"
    local_cache = RunCache(_settings(tmp_path, "local", steps=2_000))
    local_cache.prefetch(names, None)
    _assert_same_entries(ray_cache, local_cache, names)


@pytest.mark.integration
@needs_ray
def test_an_unreachable_cluster_is_one_line_before_anything_trains(pytester, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    started = time.perf_counter()
    result = pytester.runpytest_subprocess(
        str(ABLATIONS), "--ablation-executor=ray", f"--ablation-ray-address={address}", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert errors == [
        f"ERROR: --ablation-ray-address={address}: no Ray cluster can be reached there (Connection refused)"
    ]
    assert time.perf_counter() - started < 60
    assert not (tmp_path / ".ablation-cache").exists()


@pytest.mark.integration
@needs_ray
def test_the_suite_on_ray_writes_the_same_results_as_the_local_executor(pytester, tmp_path):
    # Two variants of different families, no HTML report: the session's result files are the
    # point here (the unit test above covers more variants, the report reads the same files).
    select = ("-n", "0", "-m", "convergence", "-k", "article-naive or article-target", "--ablation-no-report")
    local = run_suite(pytester, tmp_path / "local", tmp_path / "cache-local", *select)
    on_ray = run_suite(pytester, tmp_path / "ray", tmp_path / "cache-ray", *select, "--ablation-executor=ray")
    for result in (local, on_ray):
        assert result.ret in (0, 1), result.stdout.str()
    assert "training on Ray (a local instance)" in on_ray.stdout.str()
    for name in ("runs.parquet", "episodes.parquet", "tests.parquet"):
        frames = [pd.read_parquet(tmp_path / run / name) for run in ("local", "ray")]
        if name == "tests.parquet":
            frames = [frame.drop(columns="duration_s") for frame in frames]
        pd.testing.assert_frame_equal(*frames)
    metas = [json.loads((tmp_path / run / "meta.json").read_text()) for run in ("local", "ray")]
    assert [meta.pop("executor") for meta in metas] == ["local", "ray"]
    for meta in metas:
        for key in SESSION_KEYS:
            meta.pop(key)
    assert metas[0] == metas[1]


def test_diagnose_hands_the_executor_to_pytest_and_trains_in_one_process_on_ray():
    from ablations.diagnosis.command import build_parser, pytest_args

    local = pytest_args(build_parser().parse_args(["diagnose", "my.toml"]), "my")
    assert local[-2:] == ["-n", "auto"] and not any(a.startswith("--ablation-executor") for a in local)
    on_ray = pytest_args(
        build_parser().parse_args(["diagnose", "my.toml", "--executor", "ray", "--ray-address", "h:1"]), "my"
    )
    assert on_ray[-2:] == ["--ablation-executor=ray", "--ablation-ray-address=h:1"] and "-n" not in on_ray
    arguments = ["diagnose", "my.toml", "--max-seeds", "80", "--no-futility", "--max-batch", "40"]
    sequential = pytest_args(build_parser().parse_args(arguments), "my")
    assert sequential[-3:] == ["--ablation-max-seeds=80", "--ablation-no-futility", "--ablation-max-batch=40"]
