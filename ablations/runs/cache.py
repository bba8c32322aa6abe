"""Trained runs, cached on disk and trained at most once per session across xdist workers.

This module stores and finds entries; the runs themselves train in this process
(runs/local.py) or on a Ray cluster (runs/remote.py).

An entry is a RunResult directory (Parquet + JSON, written atomically by RunResult.save)
named by a key over the config, a block of seeds and the engine's code version. The profile's
seeds are the first blocks; seeds on demand add blocks (the seeds of the next look), and a run
over more seeds is its blocks side by side: seed isolation makes that bit-identical to training
all seeds at once, so old seeds are never retrained. A file lock per
entry makes every other process wait for the one that trains it. An entry that does not load
(a partial write, a corrupt file) or whose key does not match is deleted and retrained, so
an interrupted session leaves nothing a later one trusts by mistake.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from pathlib import Path

from filelock import FileLock

from ablations.runs.local import batches, deal, train_locally
from ablations.runs.remote import RayExecutor
from ablations.settings import AblationSettings
from agents.catalogue.presets import Variant
from agents.engine.family import family_key
from agents.engine.loop import TrainingRecord
from agents.results import RESULT_FORMAT_VERSION, ResultsError, RunResult, code_version
from reports.analysis.stats import seed_stages

CACHE_FORMAT = 2  # 2: the key reads the engine folder and its three modules (agents/results.py)
# The most seeds in one entry: the unit the cache stores and a Ray cluster distributes (the
# paper profile's 100 seeds are 5 entries per variant). A seed's rows do not depend on the
# other seeds of its entry, with one exception: the engine stops recording an entry once all
# its seeds have hard-diverged. So entries are cut the same way whatever trains them, and an
# executor never cuts one. 20 keeps the standard profile's 20 seeds one entry.
BLOCK_SEEDS = 20


class RunCache:
    def __init__(
        self,
        settings: AblationSettings,
        executor: RayExecutor | None = None,
        report: Callable[[str], None] | None = None,
    ):
        self.settings = settings
        self.executor = executor  # None: train here (this process's share); else on Ray
        self.report = report  # writes a progress line of local training (None: silent)
        self.directory = settings.cache_dir
        self._memory: dict[str, RunResult] = {}
        self.trained_here: list[str] = []  # variants this process trained, in order

    def blocks(self, count: int | None = None) -> list[tuple[int, ...]]:
        """The seed blocks of a run over the first `count` seeds (default: the profile's): the
        profile's seeds, then one block per further look of seed_stages, each cut into blocks
        of at most BLOCK_SEEDS seeds."""
        base = len(self.settings.seeds)
        count = base if count is None else count
        bounds = seed_stages(base, count)
        if bounds[-1] != count:
            raise ValueError(f"count={count} is invalid: a run has {base} seeds or a look of seed_stages")
        return [
            tuple(range(start, min(high, start + BLOCK_SEEDS)))
            for low, high in zip([0, *bounds[:-1]], bounds)
            for start in range(low, high, BLOCK_SEEDS)
        ]

    def key(self, variant: Variant, seeds: tuple[int, ...] | None = None) -> str:
        config = self.settings.configure(variant.config)
        payload = {
            "format": CACHE_FORMAT,
            "config": config.content_hash(),
            "seeds": list(self.settings.seeds if seeds is None else seeds),
            "code": code_version(),
            # The engine path is in the key, so one path's results are never read as another's.
            "path": self.settings.engine_path,
            "results_format": RESULT_FORMAT_VERSION,
        }
        if self.settings.env_settings:  # a config file's [env] values shape the recorded env profile
            payload["env_settings"] = self.settings.env_settings
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]

    def path(self, variant: Variant, seeds: tuple[int, ...] | None = None) -> Path:
        return self.directory / f"{variant.name}-{self.key(variant, seeds)}"

    def _load_valid(self, path: Path, key: str) -> RunResult | None:
        if not path.exists():
            return None
        try:
            result = RunResult.load(path)
        except ResultsError:
            return None
        if result.meta.get("cache_key") != key:
            return None
        if self.settings.rerun and result.meta.get("session_id") != self.settings.session_id:
            return None  # --ablation-rerun: only runs trained in this session count
        return result

    def _block(self, variant: Variant, seeds: tuple[int, ...]) -> RunResult:
        """One block of seeds of the variant: from memory, disk, or trained now."""
        key = self.key(variant, seeds)
        if key in self._memory:
            return self._memory[key]
        path = self.path(variant, seeds)
        result = self._load_valid(path, key)
        if result is None and self.executor is not None:
            self._train_remote([(variant, seeds)])
            result = self._load_valid(path, key)
        if result is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            with FileLock(str(path) + ".lock"):
                result = self._load_valid(path, key)  # another process may have finished it
                if result is None:
                    result = self._train(variant, seeds)
        # Where the controller finds this run when it writes the results folder.
        result.meta["cache_paths"] = [str(path)]
        self._memory[key] = result
        return result

    def get(self, variant: Variant, count: int | None = None) -> RunResult:
        """The variant's run over its first `count` seeds (default: the profile's)."""
        return RunResult.concat([self._block(variant, block) for block in self.blocks(count)])

    def prefetch(self, names, count: int | None, worker: int = 0, workers: int = 1) -> None:
        """Make sure every seed block of these variants exists. The missing (variant, block)
        jobs are dealt out among the workers by their agent-steps (`deal`), and each worker
        trains its jobs family by family (agents.engine.family), each family's share as one batch on
        one seed axis (or several of at most --ablation-max-batch agents); then every entry is
        loaded (waiting on the locks of entries another worker is still training)."""
        jobs = [(self.settings.variant(name), block) for name in dict.fromkeys(names) for block in self.blocks(count)]
        missing = [(v, b) for v, b in jobs if self._cached(v, b) is None]
        if self.executor is not None:
            if missing:
                self._train_remote(missing)  # every missing entry: Ray spreads them, not the workers
        else:
            # Dealt over all families at once: dealing each family apart sent every family's
            # first member to worker 0, so two one-member families left worker 1 idle. Cost is
            # seeds x env steps; per agent-step a replay member costs up to 1.4x a no-replay one.
            costs = [len(b) * self.settings.configure(v.config).total_env_steps for v, b in missing]
            share = [missing[i] for i in deal(costs, workers)[worker]]
            for members in self._by_family(share):
                # A batch writes its entries when it ends: --ablation-max-batch bounds what an
                # interrupted session loses (the results do not depend on how jobs are batched).
                for batch in batches([len(block) for _, block in members], self.settings.max_batch):
                    self._train_together([members[i] for i in batch])
        for variant, block in jobs:
            self._block(variant, block)

    def _by_family(self, jobs: list[tuple[Variant, tuple[int, ...]]]) -> list[list[tuple[Variant, tuple[int, ...]]]]:
        """The jobs grouped by variant family (by variant with --ablation-no-families), in order."""
        groups: dict = {}
        for variant, block in jobs:
            family = family_key(self.settings.configure(variant.config)) if self.settings.families else variant.name
            groups.setdefault(family, []).append((variant, block))
        return list(groups.values())

    def _cached(self, variant: Variant, seeds: tuple[int, ...]) -> RunResult | None:
        key = self.key(variant, seeds)
        return self._memory.get(key) or self._load_valid(self.path(variant, seeds), key)

    def _train_together(self, jobs: list[tuple[Variant, tuple[int, ...]]]) -> None:
        """Train these (variant, block) jobs of one family in one batch and store each as its own
        entry. Every entry's lock is held (in a fixed order, so two workers cannot deadlock)
        and jobs another process finished meanwhile are dropped."""
        with self._locked(jobs) as todo:
            if not todo:
                return
            started = time.perf_counter()
            records = self._train_batch(todo)
            seconds = time.perf_counter() - started
            total = sum(len(b) for _, b in todo)
            for (variant, block), record in zip(todo, records):
                # The family's training time shared out by seeds.
                self._store(variant, block, self._run(variant, record), seconds * len(block) / total, total)

    def _train_remote(self, jobs: list[tuple[Variant, tuple[int, ...]]]) -> None:
        """Train these (variant, block) jobs on Ray, families packed into tasks; each entry is
        stored as soon as its task returns, under the same locks as _train_together."""
        with self._locked(jobs) as todo:
            families = [[(variant.name, block) for variant, block in family] for family in self._by_family(todo)]
            variants = {variant.name: variant for variant, _ in todo}
            configured = {name: self.settings.configure(v.config) for name, v in variants.items()}
            trained = self.executor.train(families, configured.__getitem__, self.settings.env_settings)
            for (name, block), run, seconds, task_seeds in trained:
                self._store(variants[name], block, run, seconds, task_seeds)

    @contextmanager
    def _locked(self, jobs: list[tuple[Variant, tuple[int, ...]]]):
        """Hold every job's entry lock (in a fixed order, so two processes cannot deadlock) and
        give the jobs no other process has finished meanwhile."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with ExitStack() as locks:
            for path in sorted(str(self.path(v, b)) for v, b in jobs):
                locks.enter_context(FileLock(path + ".lock"))
            yield [(v, b) for v, b in jobs if self._cached(v, b) is None]

    def _train(self, variant: Variant, seeds: tuple[int, ...]) -> RunResult:
        started = time.perf_counter()
        (record,) = self._train_batch([(variant, seeds)])
        return self._store(variant, seeds, self._run(variant, record), time.perf_counter() - started, len(seeds))

    def _train_batch(self, jobs: list[tuple[Variant, tuple[int, ...]]]) -> list[TrainingRecord]:
        """Train (variant, block) jobs of one family on one seed axis, here (runs/local.py)."""
        jobs = [(v.name, self.settings.configure(v.config), b) for v, b in jobs]
        return train_locally(jobs, self.report, path=self.settings.engine_path)

    def _run(self, variant: Variant, record) -> RunResult:
        return RunResult.from_record(variant.name, record, self.settings.env_settings)

    def _store(
        self, variant: Variant, block: tuple[int, ...], result: RunResult, seconds: float, family_seeds: int
    ) -> RunResult:
        path, key = self.path(variant, block), self.key(variant, block)
        # Whatever is there is partial, corrupt, stale or from before --ablation-rerun.
        shutil.rmtree(path, ignore_errors=True)
        for leftover in self.directory.glob(f".{path.name}.*.partial"):
            shutil.rmtree(leftover, ignore_errors=True)
        result.meta.update(
            cache_key=key, session_id=self.settings.session_id, train_seconds=seconds, family_seeds=family_seeds
        )
        result.save(path)
        self.trained_here.append(variant.name)
        return result
