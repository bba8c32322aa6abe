"""An ablation results folder, read back: runs.parquet, tests.parquet, episodes.parquet and
meta.json, checked as they load (never unpickled). Every reader of results starts here."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from agents.envprofile import EnvProfile
from reports.analysis.metrics import as_env_profile, per_seed

REQUIRED = ("runs.parquet", "tests.parquet", "meta.json")
RUN_COLUMNS = ("variant", "seed", "env_step", "eval_return", "max_abs_q", "diverged")
TEST_COLUMNS = ("node_id", "property", "verdict", "outcome", "details")


class ReportError(ValueError):
    """The results folder cannot be reported on; the message names the file and the problem."""


@dataclass
class Results:
    directory: Path
    runs: pd.DataFrame
    tests: pd.DataFrame
    episodes: pd.DataFrame
    meta: dict

    @property
    def env_id(self) -> str:
        return self.meta.get("env_id", "CartPole-v1")

    @property
    def profile(self) -> dict | str:
        """The env profile recorded by the session (its env id for results saved before)."""
        return self.meta.get("env_profile") or self.env_id

    @property
    def env_profile(self) -> EnvProfile:
        return as_env_profile(self.profile)

    @functools.cached_property
    def variant_configs(self) -> dict[str, dict]:
        """Each variant's config as recorded in meta.json (empty where none was recorded)."""
        return {name: meta.get("config", {}) for name, meta in self.meta.get("variants", {}).items()}

    def gamma(self, variant: str) -> float:
        return float(self.variant_configs.get(variant, {}).get("gamma", 0.99))

    @functools.cached_property
    def seed_table(self) -> pd.DataFrame:
        """per_seed metrics of every variant, one row per (variant, seed); computed once."""
        parts = []
        for variant, frame in self.runs.groupby("variant", sort=True):
            table = per_seed(frame, self.profile, self.gamma(variant))
            table.insert(0, "variant", variant)
            parts.append(table)
        return pd.concat(parts, ignore_index=True)

    def details(self, test_prefix: str) -> list[tuple[str, dict]]:
        """(test name, recorded details) of the tests whose name starts with test_prefix."""
        rows = self.tests[self.tests["test"].str.startswith(test_prefix)]
        return [(row.test, json.loads(row.details) if row.details else {}) for row in rows.itertuples()]


def load_results(directory: str | Path) -> Results:
    """Load a results folder; a missing, empty or corrupt file raises ReportError naming it."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ReportError(f"{folder}: not a results folder (run `pytest -n auto ablations` to make one)")
    for name in REQUIRED:
        if not (folder / name).is_file():
            raise ReportError(f"{folder / name}: missing; the results folder is partial")
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{folder / 'meta.json'}: corrupt ({exc})") from None
    frames = {}
    for name, columns in (("runs.parquet", RUN_COLUMNS), ("tests.parquet", TEST_COLUMNS)):
        path = folder / name
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise ReportError(f"{path}: corrupt ({exc})") from None
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ReportError(f"{path}: missing columns {missing}")
        if frame.empty:
            raise ReportError(f"{path}: empty; the session recorded no {name.split('.')[0]}")
        frames[name] = frame
    episodes_path = folder / "episodes.parquet"
    try:
        episodes = pd.read_parquet(episodes_path) if episodes_path.is_file() else pd.DataFrame()
    except Exception as exc:
        raise ReportError(f"{episodes_path}: corrupt ({exc})") from None
    return Results(folder, frames["runs.parquet"], frames["tests.parquet"], episodes, meta)


