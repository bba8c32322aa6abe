"""Trained runs, cached on disk and trained at most once per session across xdist workers.

An entry is a RunResult directory (Parquet + JSON, written atomically by RunResult.save)
named by a key over the config, a block of seeds and the engine's code version. The profile's
seeds are the first block; seeds on demand add blocks (the seeds of the next look), and a run
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
from pathlib import Path

from filelock import FileLock

from ablations.settings import AblationSettings
from agents.engine import train
from agents.presets import Variant, get_variant
from agents.results import RESULT_FORMAT_VERSION, ResultsError, RunResult, code_version
from reports.stats import seed_stages

CACHE_FORMAT = 1


class RunCache:
    def __init__(self, settings: AblationSettings):
        self.settings = settings
        self.directory = settings.cache_dir
        self._memory: dict[str, RunResult] = {}
        self.trained_here: list[str] = []  # variants this process trained, in order

    def blocks(self, count: int | None = None) -> list[tuple[int, ...]]:
        """The seed blocks of a run over the first `count` seeds (default: the profile's): the
        profile's seeds, then one block per further look of seed_stages."""
        base = len(self.settings.seeds)
        count = base if count is None else count
        bounds = seed_stages(base, count)
        if bounds[-1] != count:
            raise ValueError(f"count={count} is invalid: a run has {base} seeds or a look of seed_stages")
        return [tuple(range(low, high)) for low, high in zip([0, *bounds[:-1]], bounds)]

    def key(self, variant: Variant, seeds: tuple[int, ...] | None = None) -> str:
        config = self.settings.configure(variant.config)
        payload = {
            "format": CACHE_FORMAT,
            "config": config.content_hash(),
            "seeds": list(self.settings.seeds if seeds is None else seeds),
            "code": code_version(),
            "results_format": RESULT_FORMAT_VERSION,
        }
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
        if result is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            with FileLock(str(path) + ".lock"):
                result = self._load_valid(path, key)  # another process may have finished it
                if result is None:
                    result = self._train(variant, seeds, path, key)
        # Where the controller finds this run when it writes the results folder.
        result.meta["cache_paths"] = [str(path)]
        self._memory[key] = result
        return result

    def get(self, variant: Variant, count: int | None = None) -> RunResult:
        """The variant's run over its first `count` seeds (default: the profile's)."""
        return RunResult.concat([self._block(variant, block) for block in self.blocks(count)])

    def prefetch(self, names, count: int | None, worker: int = 0, workers: int = 1) -> None:
        """Make sure every block of these variants exists, this worker training its share
        first (xdist workers then train different blocks in parallel rather than queue on one)."""
        jobs = [(name, block) for name in names for block in self.blocks(count)]
        for name, block in jobs[worker::workers] + jobs:
            self._block(get_variant(name), block)

    def _train(self, variant: Variant, seeds: tuple[int, ...], path: Path, key: str) -> RunResult:
        # Whatever is there is partial, corrupt, stale or from before --ablation-rerun.
        shutil.rmtree(path, ignore_errors=True)
        for leftover in self.directory.glob(f".{path.name}.*.partial"):
            shutil.rmtree(leftover, ignore_errors=True)
        config = self.settings.configure(variant.config)
        started = time.perf_counter()
        record = train(config, list(seeds))
        result = RunResult.from_record(variant.name, record)
        result.meta.update(
            cache_key=key, session_id=self.settings.session_id, train_seconds=time.perf_counter() - started
        )
        result.save(path)
        self.trained_here.append(variant.name)
        return result
