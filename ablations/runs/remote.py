"""Training the suite's runs on a Ray cluster (--ablation-executor ray).

The session's missing cache entries (a variant's block of at most cache.BLOCK_SEEDS seeds) are
packed into tasks: a task is some entries of one variant family (agents.engine.family), trained on
one seed axis with one CPU, as the local executor trains them. A task returns its runs as
Parquet bytes plus JSON metadata (RunResult.to_wire); the run cache stores them exactly as
runs trained here. An entry is never cut between tasks (see cache.BLOCK_SEEDS for why), so a
session keeps at most as many CPUs busy as it has missing entries. Ray is imported only when
this executor is used.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext

from agents.config import AgentConfig
from agents.results import RunResult, code_version

INSTALL_HINT = "pip install 'dqn-ablations[ray]'"
RAY_MISSING = f"--ablation-executor=ray needs Ray, which is not installed: {INSTALL_HINT}"
# A task whose worker process dies (killed, out of memory, a lost node) is run again up to
# this many times; an exception raised by the training code itself is not retried.
TASK_RETRIES = 3
# Seeds per task: enough tasks to give every CPU of the cluster two (so one slow task does
# not leave the rest idle at the end), but batches the engine runs efficiently (it falls off
# under about 8 seeds and is flat from 32), never more than memory comfortably holds.
MIN_TASK_SEEDS = 8
MAX_TASK_SEEDS = 64
TASKS_PER_CPU = 2
CONNECT_TIMEOUT_S = 5.0

Entry = tuple[str, tuple[int, ...]]  # (variant, seed block): one cache entry


class RayUnavailable(RuntimeError):
    """Ray is missing, or the cluster cannot be reached: the message is one line."""


def task_size(seed_runs: int, cpus: int) -> int:
    """Target seeds per task for `seed_runs` (variant, seed) runs on `cpus` CPUs."""
    if cpus < 1:
        raise ValueError(f"cpus={cpus} is invalid: need at least 1")
    wanted = math.ceil(seed_runs / (cpus * TASKS_PER_CPU))
    return min(MAX_TASK_SEEDS, max(MIN_TASK_SEEDS, wanted))


def plan_tasks(families: list[list[Entry]], cpus: int) -> list[tuple[Entry, ...]]:
    """Pack each family's entries, in order, into tasks of at most task_size seeds (an entry
    larger than that is a task of its own); a task never mixes families. Largest first, so
    the longest work starts first."""
    seed_runs = sum(len(block) for family in families for _, block in family)
    if seed_runs == 0:
        return []
    size = task_size(seed_runs, cpus)
    tasks: list[list[Entry]] = []
    for family in families:
        current: list[Entry] = []
        for entry in family:
            if current and sum(len(b) for _, b in current) + len(entry[1]) > size:
                tasks.append(current)
                current = []
            current.append(entry)
        if current:
            tasks.append(current)
    return sorted((tuple(task) for task in tasks), key=lambda task: -sum(len(b) for _, b in task))


def train_share(
    members: list[tuple[str, dict, list[int]]], env_settings: dict, path: str = "exact"
) -> tuple[list[dict], float]:
    """The Ray task: train (variant, config, seeds) members of one family on one seed axis and
    return each run in wire form, with the task's training seconds."""
    import torch

    from agents.engine.loop import train_family

    torch.set_num_threads(1)  # one CPU per task, as one torch thread per xdist worker
    started = time.perf_counter()
    records = train_family([(AgentConfig.from_dict(config), seeds) for _, config, seeds in members], path=path)
    seconds = time.perf_counter() - started
    return [
        RunResult.from_record(name, record, env_settings).to_wire() for (name, _, _), record in zip(members, records)
    ], seconds


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable(RAY_MISSING) from None
    return ray


def check_reachable(address: str) -> None:
    """Fail in one line, within seconds, if nothing listens at a host:port address (ray.init
    itself retries an unreachable address for minutes). 'auto' and local starts are not checked."""
    target = address.removeprefix("ray://")
    if address == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except ValueError:
        raise RayUnavailable(
            f"--ablation-ray-address={address} is invalid: expected HOST:PORT or ray://HOST:PORT"
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RayUnavailable(
            f"--ablation-ray-address={address}: no Ray cluster can be reached there ({reason})"
        ) from None


def connect(address: str | None) -> str:
    """Connect this process to Ray (a new local instance when address is None) and return the
    address other processes (xdist workers) connect to."""
    ray = import_ray()
    if ray.is_initialized():
        return ray.get_runtime_context().gcs_address
    options = {"logging_level": "ERROR", "log_to_driver": False}
    if address is None:
        options["include_dashboard"] = False
    else:
        check_reachable(address)
    try:
        ray.init(address=address, **options)
    except Exception as exc:  # ray raises ConnectionError, RuntimeError, ValueError ...
        where = "a local Ray instance could not be started" if address is None else f"--ablation-ray-address={address}"
        raise RayUnavailable(f"{where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return ray.get_runtime_context().gcs_address


def disconnect() -> None:
    ray = import_ray()
    if ray.is_initialized():
        ray.shutdown()


class RayExecutor:
    """Trains cache entries as Ray tasks and hands each back as soon as its task finishes (so
    finished work is stored even if a later task fails)."""

    def __init__(
        self,
        address: str | None,
        uncaptured: Callable[[], AbstractContextManager] = nullcontext,
        path: str = "exact",
    ):
        self.address = address
        self.path = path  # the engine path the tasks train on
        self.uncaptured = uncaptured  # lets the progress bar through pytest's output capture

    def cpus(self) -> int:
        ray = import_ray()
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def train(
        self, families: list[list[Entry]], config_of: Callable[[str], AgentConfig], env_settings: dict
    ) -> Iterator[tuple[Entry, RunResult, float, int]]:
        """Yield (entry, run, its share of its task's seconds, its task's seeds) as tasks finish."""
        ray = import_ray()
        connect(self.address)
        from tqdm import tqdm

        tasks = plan_tasks(families, self.cpus())
        remote = ray.remote(train_share).options(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=False)
        pending = {
            remote.remote(
                [(name, config_of(name).to_dict(), list(block)) for name, block in task], env_settings, self.path
            ): task
            for task in tasks
        }
        expected_code = code_version()
        with self.uncaptured(), tqdm(total=sum(len(b) for t in tasks for _, b in t), desc="ray", unit="seed") as bar:
            while pending:
                (done,), _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(done)
                wires, seconds = ray.get(done)
                task_seeds = sum(len(block) for _, block in task)
                for (name, block), wire in zip(task, wires):
                    run = RunResult.from_wire(wire, f"ray task result for {name} seeds {list(block)}")
                    if run.variant != name or run.seeds != list(block):
                        raise RuntimeError(
                            f"a ray task returned {run.variant} seeds {run.seeds} for {name} {list(block)}"
                        )
                    if run.meta.get("code_version") != expected_code:
                        raise RayUnavailable(
                            f"the Ray workers train with dqn-ablations code {run.meta.get('code_version')}, this "
                            f"session with {expected_code}: install the same version on every node"
                        )
                    yield (name, block), run, seconds * len(block) / task_seeds, task_seeds
                bar.update(task_seeds)
