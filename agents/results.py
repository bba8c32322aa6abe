"""Run results: tidy DataFrames (one row per seed x checkpoint), saved atomically as Parquet + JSON.

A saved run is a directory holding checkpoints.parquet, episodes.parquet and meta.json. It is
written into a temporary sibling directory and renamed into place, so a run directory either
exists complete or not at all; loading reads Parquet and JSON only (never pickle).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from agents.config import AgentConfig
from agents.engine.loop import TrainingRecord
from agents.envprofile import EnvProfile, env_profile

RESULT_FORMAT_VERSION = 1
RUN_TABLES = ("checkpoints.parquet", "episodes.parquet")  # beside meta.json
PACKAGE_DIR = Path(__file__).resolve().parent
VERSIONED_PACKAGES = ("torch", "gymnasium", "numpy", "pandas", "pyarrow")


class ResultsError(ValueError):
    """A results directory is missing, partial or corrupt; the message names the file."""


def write_directory_atomically(target: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Let `write` fill a staging directory beside `target`, then rename it into place.

    A reader sees the old directory, the new one, or (for an instant while replacing) none,
    never a half-written one; on any error or interrupt the staging directory is removed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        write(staging)
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


# The libraries whose arithmetic the engine's bit-identity rests on (agents/engine/networks.py): their
# versions, and the BLAS torch calls, are part of the cache key. box2d is LunarLander-v3's physics.
KEYED_LIBRARIES = ("torch", "numpy", "gymnasium", "box2d")
# The engine's boundary: the folder agents/engine/ and the only modules of agents/ it may import.
# Their sources are the code part of the cache key; tests/test_code_version.py checks that the
# engine imports nothing else from agents/, so catalogue prose or lint never retrain a run.
ENGINE_FOLDER = "engine"
ENGINE_READS = ("__init__.py", "config.py", "seeding.py", "envprofile.py")


def imported_modules(source: str, package: str) -> set[str]:
    """Dotted names under `package` ("agents.engine.replay") that a source imports, wherever the
    import stands (top level, in a function, under TYPE_CHECKING); relative imports are not used
    in this project and are read as absolute from the package."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name == package or a.name.startswith(f"{package}.")}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = f"{package}.{module}" if module else package
            if module == package or module.startswith(f"{package}."):
                names.add(module)
    return names


def engine_files(package_dir: Path = PACKAGE_DIR) -> tuple[str, ...]:
    """The files whose sources key a trained run, relative to the package: every module of the
    engine folder and the modules it may read."""
    folder = sorted(p.relative_to(package_dir).as_posix() for p in (package_dir / ENGINE_FOLDER).rglob("*.py"))
    return (*ENGINE_READS, *folder)


def library_versions() -> dict[str, str | None]:
    """The keyed libraries' versions and the BLAS torch was built with (its own build report)."""
    versions: dict[str, str | None] = {}
    for name in KEYED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    import torch

    # torch's build report: the MKL line (its version) when built with MKL, and BLAS_INFO=<name>.
    build = torch.__config__.show()
    mkl = [line.strip(" -") for line in build.splitlines() if "Math Kernel Library" in line]
    blas_info = re.search(r"BLAS_INFO=([^,\s]+)", build)
    versions["blas"] = "; ".join([*mkl, f"BLAS_INFO={blas_info.group(1) if blas_info else '?'}"])
    return versions


def code_digest(package_dir: Path = PACKAGE_DIR, libraries: dict | None = None) -> str:
    """The hash behind code_version: the engine's sources and the keyed libraries."""
    digest = hashlib.sha256()
    for name in engine_files(package_dir):
        digest.update(name.encode())
        digest.update((package_dir / name).read_bytes())
    digest.update(json.dumps(library_versions() if libraries is None else libraries, sort_keys=True).encode())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """What trained a run: the engine's sources (engine_files) and the versions of the
    libraries its arithmetic depends on, so cached results from other code are not reused.
    Computed once per process, so editing the source mid-session cannot change the key. The
    CPU's SIMD path is not keyed (runs on a mixed Ray cluster stay exchangeable); it is in the
    run's package_versions."""
    return code_digest()


@functools.cache
def git_commit() -> str | None:
    """HEAD of the package's repository when this process first asks, so a long session records
    the commit it started on, not one made while it trained."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@dataclass
class RunResult:
    """One variant trained on a set of seeds."""

    variant: str
    config: AgentConfig
    seeds: list[int]
    checkpoints: pd.DataFrame
    episodes: pd.DataFrame
    meta: dict[str, Any]

    @classmethod
    def from_record(cls, variant: str, record: TrainingRecord, env_settings: dict | None = None) -> RunResult:
        """env_settings: a config file's [env] values (success_threshold, max_abs_reward)."""
        checkpoints = pd.DataFrame(record.checkpoints)
        episodes = pd.DataFrame(record.episodes)
        for frame in (checkpoints, episodes):
            frame.insert(0, "variant", variant)
        meta = {
            "format_version": RESULT_FORMAT_VERSION,
            "variant": variant,
            "config": record.config.to_dict(),
            "config_hash": record.config.content_hash(),
            "seeds": list(record.seeds),
            "code_version": code_version(),
            "git_commit": git_commit(),
            "package_versions": package_versions(),
            "wall_time_s": record.wall_time_s,
            "path": record.path,  # the engine's execution path: part of what the cache key must cover
            "env_profile": env_profile(record.config.env_id, **(env_settings or {})).to_dict(),
        }
        return cls(variant, record.config, list(record.seeds), checkpoints, episodes, meta)

    @property
    def env_profile(self) -> EnvProfile:
        """The run's env profile as recorded (computed from the env for runs saved before)."""
        recorded = self.meta.get("env_profile")
        return EnvProfile.from_dict(recorded) if recorded else env_profile(self.config.env_id)

    @classmethod
    def concat(cls, parts: list[RunResult]) -> RunResult:
        """One run from runs of the same variant on disjoint seeds, side by side (seed isolation
        makes this identical to training all the seeds at once); meta sums the timings."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        if any(p.variant != first.variant or p.config != first.config for p in parts):
            raise ValueError("RunResult.concat takes runs of one variant and one config")
        meta = {
            **first.meta,
            "seeds": [s for p in parts for s in p.seeds],
            "cache_paths": [path for p in parts for path in p.meta.get("cache_paths", [])],
            "train_seconds": sum(p.meta.get("train_seconds", 0.0) for p in parts),
            "wall_time_s": sum(p.meta.get("wall_time_s", 0.0) for p in parts),
        }
        return cls(
            first.variant,
            first.config,
            meta["seeds"],
            pd.concat([p.checkpoints for p in parts], ignore_index=True),
            pd.concat([p.episodes for p in parts], ignore_index=True),
            meta,
        )

    def final(self) -> pd.DataFrame:
        """The last checkpoint of every seed."""
        last = self.checkpoints["env_step"].max()
        return self.checkpoints[self.checkpoints["env_step"] == last].reset_index(drop=True)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the run to `directory` atomically (staging directory + rename)."""

        def write(staging: Path) -> None:
            for name, frame in zip(RUN_TABLES, (self.checkpoints, self.episodes)):
                frame.to_parquet(staging / name, index=False)
            (staging / "meta.json").write_text(json.dumps(self.meta, indent=2, sort_keys=True))

        return write_directory_atomically(directory, write)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> RunResult:
        """Read a saved run; a missing or unreadable file raises ResultsError naming it."""
        source = Path(directory)
        try:
            meta_text = (source / "meta.json").read_text()
            tables = {name: (source / name).read_bytes() for name in RUN_TABLES}
        except FileNotFoundError as exc:
            raise ResultsError(f"{exc.filename}: missing; the run directory is incomplete") from None
        return cls._from_parts(meta_text, tables, source)

    def to_wire(self) -> dict[str, bytes | str]:
        """The run as the files `save` writes, in memory: Parquet bytes per table and the JSON
        metadata. How a run trained elsewhere (a Ray task) travels back: no pickled objects."""
        wire: dict[str, bytes | str] = {"meta.json": json.dumps(self.meta, sort_keys=True)}
        for name, frame in zip(RUN_TABLES, (self.checkpoints, self.episodes)):
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            wire[name] = buffer.getvalue()
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, bytes | str], origin: str) -> RunResult:
        """Read a run from `to_wire`'s form, validated like `load`; errors name `origin`."""
        try:
            tables = {name: wire[name] for name in RUN_TABLES}
            meta_text = wire["meta.json"]
        except (KeyError, TypeError):
            raise ResultsError(f"{origin}: not a run (expected {['meta.json', *RUN_TABLES]})") from None
        return cls._from_parts(meta_text, tables, Path(origin))

    @classmethod
    def _from_parts(cls, meta_text: str, tables: dict[str, bytes], source: Path) -> RunResult:
        try:
            meta = json.loads(meta_text)
            config = AgentConfig.from_dict(meta["config"])
            variant, seeds = meta["variant"], [int(s) for s in meta["seeds"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ResultsError(f"{source / 'meta.json'}: corrupt ({exc})") from None
        frames = []
        for name in RUN_TABLES:
            try:
                frames.append(pd.read_parquet(io.BytesIO(tables[name])))
            except Exception as exc:  # pyarrow raises several types for damaged files
                raise ResultsError(f"{source / name}: corrupt ({exc})") from None
        checkpoints, episodes = frames
        found = sorted(checkpoints["seed"].unique().tolist()) if len(checkpoints) else []
        if found != sorted(seeds):
            raise ResultsError(f"{source / RUN_TABLES[0]}: seeds {found} do not match meta.json seeds {seeds}")
        return cls(variant, config, seeds, checkpoints, episodes, meta)
