"""The local executor: a worker's share of the missing runs, trained in this process family by
family on one seed axis (agents.engine.train_family), with progress lines. How shares are dealt
among xdist workers and cut into batches is here too; runs/remote.py is the Ray executor."""

from __future__ import annotations

from ablations.progress import TrainingProgress, seed_ranges
from agents.config import AgentConfig
from agents.engine.loop import TrainingRecord, train_family


def deal(costs: list[float], workers: int) -> list[list[int]]:
    """Job indices per worker: largest job first to the least-loaded worker, ties to the earlier
    job and the lower worker (longest-processing-time first). Deterministic, so every xdist
    worker computes the same deal without talking to the others."""
    loads = [0.0] * workers
    shares: list[list[int]] = [[] for _ in range(workers)]
    for index in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        worker = min(range(workers), key=lambda w: (loads[w], w))
        loads[worker] += costs[index]
        shares[worker].append(index)
    return [sorted(share) for share in shares]


def batches(sizes: list[int], cap: int | None) -> list[list[int]]:
    """Consecutive job indices cut into batches of at most `cap` agents; a job larger than the
    cap is a batch alone (a seed block is a cache entry, never split). None: one batch."""
    if cap is None:
        return [list(range(len(sizes)))] if sizes else []
    cut: list[list[int]] = []
    load = 0
    for index, size in enumerate(sizes):
        if not cut or load + size > cap:
            cut.append([])
            load = 0
        cut[-1].append(index)
        load += size
    return cut


def train_locally(
    jobs: list[tuple[str, AgentConfig, tuple[int, ...]]], report=None, path: str = "exact"
) -> list[TrainingRecord]:
    """Train (variant name, config, seed block) jobs of one family on one seed axis, on the
    engine's `path`; with a `report` callable, a progress line per stage."""
    members = [(config, list(block)) for _, config, block in jobs]
    if report is None:
        return train_family(members, path=path)
    seeds: dict[str, list[int]] = {}
    for name, _, block in jobs:
        seeds.setdefault(name, []).extend(block)
    agents = sum(len(block) for _, _, block in jobs)
    steps = members[0][0].total_env_steps  # a family shares its env steps (agents.engine.family)
    detail = ", ".join(f"{name} seeds {seed_ranges(s)}" for name, s in seeds.items())
    progress = TrainingProgress(report, f"{agents} agents x {steps:,} env steps", detail, steps, agents)
    records = train_family(members, progress=progress, path=path)
    progress.finish()
    return records
