"""Profiles and the settings of one ablation session, read from the pytest command line."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.config import AgentConfig
from agents.envprofile import env_profile, require_success_threshold
from agents.envs import env_spec
from reports.stats import seed_stages


@dataclass(frozen=True)
class Profile:
    """A named size of an ablation run: seeds per variant x env steps per seed."""

    name: str
    seeds: int
    env_steps: int


PROFILES = {
    "smoke": Profile("smoke", 3, 10_000),  # CI: a few minutes on 2 cores; most claims inconclusive
    "standard": Profile("standard", 20, 50_000),  # the main job
    "paper": Profile("paper", 100, 100_000),  # tight intervals
}
DEFAULT_PROFILE = "smoke"
EVAL_EPISODES = 10


def checkpoint_period(env_steps: int) -> int:
    """Env steps between checkpoints: 50 checkpoints for long runs, 10 for short ones."""
    return max(1, env_steps // (50 if env_steps >= 50_000 else 10))


@dataclass(frozen=True)
class AblationSettings:
    profile: str
    seeds: tuple[int, ...]
    env_steps: int
    env_id: str
    out_dir: Path
    cache_dir: Path
    rerun: bool
    write_report: bool
    session_id: str
    # Seeds on demand: claims still inconclusive get more seeds, doubling, up to this many.
    max_seeds: int | None = None
    # Train the variants of a family on one seed axis (off: one variant at a time).
    families: bool = True

    @property
    def looks(self) -> list[int]:
        """Cumulative seed counts at which the claims are looked at (one look without max_seeds)."""
        return seed_stages(len(self.seeds), self.max_seeds or len(self.seeds))

    def configure(self, config: AgentConfig) -> AgentConfig:
        """A variant's config resized to this session's profile and env."""
        return config.replace(
            env_id=self.env_id,
            total_env_steps=self.env_steps,
            eval_period=checkpoint_period(self.env_steps),
            eval_episodes=EVAL_EPISODES,
        )

    def describe(self) -> str:
        return (
            f"ablation profile: {self.profile} ({len(self.seeds)} seeds x {self.env_steps:,} env steps, "
            f"{self.env_id}); results -> {self.out_dir}; cache -> {self.cache_dir}"
            + ("; retraining everything" if self.rerun else "")
            + (f"; claims get up to {self.max_seeds} seeds (looks at {self.looks})" if self.max_seeds else "")
        )


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("ablations", "DQN ablation suite")
    group.addoption(
        "--ablation-profile",
        choices=sorted(PROFILES),
        default=DEFAULT_PROFILE,
        help="run size: smoke (3 seeds x 10k steps), standard (20 x 50k), paper (100 x 100k). Default smoke.",
    )
    group.addoption("--ablation-seeds", type=int, default=None, help="seeds per variant (overrides the profile)")
    group.addoption("--ablation-steps", type=int, default=None, help="env steps per seed (overrides the profile)")
    group.addoption("--ablation-env", default="CartPole-v1", help="gymnasium env id (default CartPole-v1)")
    group.addoption("--ablation-out", default="ablation-results", help="results folder (default ablation-results)")
    group.addoption("--ablation-cache", default=".ablation-cache", help="trained-run cache (default .ablation-cache)")
    group.addoption("--ablation-rerun", action="store_true", help="retrain every variant instead of using the cache")
    group.addoption("--ablation-no-report", action="store_true", help="do not write the HTML report at the end")
    group.addoption(
        "--ablation-no-families",
        action="store_true",
        help="train each variant on its own instead of whole variant families on one seed axis "
        "(the results are the same bit for bit; for timing comparisons)",
    )
    group.addoption(
        "--ablation-max-seeds",
        type=int,
        default=None,
        help="seeds on demand: claims still inconclusive get more seeds (doubling) up to N, under a "
        "group-sequential design that keeps the family's error rate at alpha",
    )


def read_settings(config: pytest.Config, session_id: str | None = None) -> AblationSettings:
    """Validate the options; a bad value is a usage error naming the option and the value."""
    profile = PROFILES[config.getoption("ablation_profile")]
    seeds = config.getoption("ablation_seeds")
    steps = config.getoption("ablation_steps")
    if seeds is not None and seeds < 2:
        raise pytest.UsageError(f"--ablation-seeds={seeds} is invalid: statistics over seeds need at least 2")
    if steps is not None and steps < 100:
        raise pytest.UsageError(f"--ablation-steps={steps} is invalid: need at least 100 env steps")
    max_seeds = config.getoption("ablation_max_seeds")
    base_seeds = seeds if seeds is not None else profile.seeds
    if max_seeds is not None and max_seeds < base_seeds:
        raise pytest.UsageError(
            f"--ablation-max-seeds={max_seeds} is invalid: must be at least the profile's {base_seeds} seeds"
        )
    env_id = config.getoption("ablation_env")
    try:
        env_spec(env_id)
        require_success_threshold(env_profile(env_id))
    except ValueError as exc:
        raise pytest.UsageError(f"--ablation-env: {exc}") from None
    root = Path(config.rootpath)
    return AblationSettings(
        profile=profile.name if seeds is None and steps is None else f"{profile.name} (overridden)",
        seeds=tuple(range(base_seeds)),
        env_steps=steps if steps is not None else profile.env_steps,
        env_id=env_id,
        out_dir=root / config.getoption("ablation_out"),
        cache_dir=root / config.getoption("ablation_cache"),
        rerun=bool(config.getoption("ablation_rerun")),
        write_report=not config.getoption("ablation_no_report"),
        session_id=session_id or uuid.uuid4().hex,
        max_seeds=max_seeds if max_seeds and max_seeds > base_seeds else None,
        families=not config.getoption("ablation_no_families"),
    )
