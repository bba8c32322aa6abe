"""Trained runs, cached on disk and trained at most once per session across xdist workers.

An entry is a RunResult directory (Parquet + JSON, written atomically by RunResult.save)
named by a key over the config, the seeds and the engine's code version. A file lock per
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
from agents.presets import Variant
from agents.results import RESULT_FORMAT_VERSION, ResultsError, RunResult, code_version

CACHE_FORMAT = 1


class RunCache:
    def __init__(self, settings: AblationSettings):
        self.settings = settings
        self.directory = settings.cache_dir
        self._memory: dict[str, RunResult] = {}
        self.trained_here: list[str] = []  # variants this process trained, in order

    def key(self, variant: Variant) -> str:
        config = self.settings.configure(variant.config)
        payload = {
            "format": CACHE_FORMAT,
            "config": config.content_hash(),
            "seeds": list(self.settings.seeds),
            "code": code_version(),
            "results_format": RESULT_FORMAT_VERSION,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]

    def path(self, variant: Variant) -> Path:
        return self.directory / f"{variant.name}-{self.key(variant)}"

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

    def get(self, variant: Variant) -> RunResult:
        """The variant's run at this session's profile: from memory, disk, or trained now."""
        key = self.key(variant)
        if key in self._memory:
            return self._memory[key]
        path = self.path(variant)
        result = self._load_valid(path, key)
        if result is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            with FileLock(str(path) + ".lock"):
                result = self._load_valid(path, key)  # another process may have finished it
                if result is None:
                    result = self._train(variant, path, key)
        # Where the controller finds this run when it writes the results folder.
        result.meta["cache_path"] = str(path)
        self._memory[key] = result
        return result

    def _train(self, variant: Variant, path: Path, key: str) -> RunResult:
        # Whatever is there is partial, corrupt, stale or from before --ablation-rerun.
        shutil.rmtree(path, ignore_errors=True)
        for leftover in self.directory.glob(f".{path.name}.*.partial"):
            shutil.rmtree(leftover, ignore_errors=True)
        config = self.settings.configure(variant.config)
        started = time.perf_counter()
        record = train(config, list(self.settings.seeds))
        result = RunResult.from_record(variant.name, record)
        result.meta.update(
            cache_key=key, session_id=self.settings.session_id, train_seconds=time.perf_counter() - started
        )
        result.save(path)
        self.trained_here.append(variant.name)
        return result
