"""The settings of one ablation session, read from the pytest command line (ablations/options.py)."""

from __future__ import annotations

import dataclasses
import importlib.util
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from ablations.diagnosis.plan import BASE_STAGE, THOROUGH_STAGE, DiagnosisPlan, build_plan, read_plan
from ablations.options import PROFILES
from ablations.runs.remote import RAY_MISSING
from agents.catalogue.presets import Variant, get_variant
from agents.config import AgentConfig, ConfigError
from agents.configfile import ConfigFile, load_config_file
from agents.diagnosis.ladder import one_knob_ladder
from agents.engine.envs import env_spec
from agents.engine.fastpath import check_path
from agents.envprofile import env_profile, require_success_threshold
from reports.analysis.stats import seed_stages

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
    # With seeds on demand, stop claims early whose conditional power is too low (ablations.claims.article).
    futility: bool = True
    # Train the variants of a family on one seed axis (off: one variant at a time).
    families: bool = True
    # At most this many agents per training batch (None: a worker's whole share of a family).
    max_batch: int | None = None
    # A diagnosis (--ablation-config): the user's config file, and the session's own variants,
    # its base first and then one per rung of the one-knob ladder (agents/diagnosis/ladder.py).
    config_file: ConfigFile | None = None
    # Where runs train: "local" (this machine's xdist workers) or "ray" (ray_address, or a
    # local Ray instance when None).
    executor: str = "local"
    ray_address: str | None = None
    session_variants: tuple[Variant, ...] = ()
    skipped_rungs: tuple[str, ...] = ()
    # A diagnosis' plan (ablations/diagnosis/plan.py) and the stage this session trains through.
    diagnosis_plan: DiagnosisPlan | None = None
    diagnosis_stage: int = THOROUGH_STAGE
    # The engine path runs train on (agents.config.ENGINE_PATHS; docs/speed.md): exact by
    # default, bit-identical to the textbook DQN; the others agree within float tolerance.
    engine_path: str = "exact"

    def __post_init__(self):
        check_path(self.engine_path)

    @property
    def diagnosis(self) -> bool:
        return self.config_file is not None

    @property
    def env_settings(self) -> dict:
        """The config file's [env] values (success threshold, reward bound) where it gives them."""
        return config_env_settings(self.config_file)

    def variant(self, name: str) -> Variant:
        """A variant of this session (a diagnosis' base or rung) or a preset."""
        for variant in self.session_variants:
            if variant.name == name:
                return variant
        return get_variant(name)

    @property
    def looks(self) -> list[int]:
        """Cumulative seed counts at which the claims are looked at (one look without max_seeds)."""
        return seed_stages(len(self.seeds), self.max_seeds or len(self.seeds))

    def configure(self, config: AgentConfig) -> AgentConfig:
        """A variant's config resized to this session's profile and env. A diagnosis' variants are
        sized by its plan already, and keep their own steps (the steps rung trains 4x the base's)."""
        return sized_config(config, self.env_id, config.total_env_steps if self.diagnosis else self.env_steps)

    def describe(self) -> str:
        return (
            (
                f"diagnosis of {self.config_file.path} ({len(self.session_variants) - 1} rungs); "
                if self.diagnosis
                else ""
            )
            + f"ablation profile: {self.profile} ({len(self.seeds)} seeds x {self.env_steps:,} env steps, "
            f"{self.env_id}); results -> {self.out_dir}; cache -> {self.cache_dir}"
            + ("; retraining everything" if self.rerun else "")
            + (f"; training on Ray ({self.ray_address or 'a local instance'})" if self.executor == "ray" else "")
            + (f"; claims get up to {self.max_seeds} seeds (looks at {self.looks})" if self.max_seeds else "")
            + ("; no futility stop" if self.max_seeds and not self.futility else "")
            + (f"; training batches of at most {self.max_batch} agents" if self.max_batch else "")
            + (
                f"; training on the engine's {self.engine_path} path (equal to the exact path within float "
                "tolerance, not bit for bit: docs/speed.md)"
                if self.engine_path != "exact"
                else ""
            )
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
    if config.getoption("ablation_no_futility") and max_seeds is None:
        raise pytest.UsageError("--ablation-no-futility needs --ablation-max-seeds: one look has nothing to stop")
    max_batch = config.getoption("ablation_max_batch")
    if max_batch is not None and max_batch < 1:
        raise pytest.UsageError(f"--ablation-max-batch={max_batch} is invalid: a batch trains at least 1 agent")
    executor, ray_address = _executor(config)
    config_file = _config_file(config.getoption("ablation_config"), config.invocation_params.dir)
    env_id = config_file.config.env_id if config_file else config.getoption("ablation_env")
    env_settings = config_env_settings(config_file)
    option = "--ablation-config" if config_file else "--ablation-env"
    try:
        check_env(env_id, env_settings)
    except ValueError as exc:
        raise pytest.UsageError(f"{option}: {exc}") from None
    if steps is None:
        # A diagnosis trains its plan's budget (set by _with_ladder).
        steps = profile.env_steps * env_profile(env_id, **env_settings).step_budget_factor
    # Relative folders are relative to where pytest was started (as for any command-line path).
    root = Path(config.invocation_params.dir)
    settings = AblationSettings(
        profile=profile.name
        if config.getoption("ablation_seeds") is None and config.getoption("ablation_steps") is None
        else f"{profile.name} (overridden)",
        seeds=tuple(range(base_seeds)),
        env_steps=steps,
        env_id=env_id,
        out_dir=root / config.getoption("ablation_out"),
        cache_dir=root / config.getoption("ablation_cache"),
        rerun=bool(config.getoption("ablation_rerun")),
        write_report=not config.getoption("ablation_no_report"),
        session_id=session_id or uuid.uuid4().hex,
        max_seeds=max_seeds if max_seeds and max_seeds > base_seeds else None,
        futility=not config.getoption("ablation_no_futility"),
        families=not config.getoption("ablation_no_families"),
        max_batch=max_batch,
        engine_path=config.getoption("ablation_engine_path"),
        config_file=config_file,
        executor=executor,
        ray_address=ray_address,
    )
    return _with_ladder(settings, config) if config_file else settings


def _executor(config: pytest.Config) -> tuple[str, str | None]:
    executor, address = config.getoption("ablation_executor"), config.getoption("ablation_ray_address")
    if address is not None and executor != "ray":
        raise pytest.UsageError(f"--ablation-ray-address={address} needs --ablation-executor=ray (it is {executor})")
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        raise pytest.UsageError(RAY_MISSING)
    return executor, address


def sized_config(config: AgentConfig, env_id: str, env_steps: int) -> AgentConfig:
    """config on env_id for env_steps, with the suite's checkpoints (as every session trains it)."""
    return config.replace(
        env_id=env_id,
        total_env_steps=env_steps,
        eval_period=checkpoint_period(env_steps),
        eval_episodes=EVAL_EPISODES,
    )


def check_env(env_id: str, env_settings: dict) -> None:
    """A ValueError (one line) unless DQN can train on env_id and its runs can be judged: a
    registered env with discrete actions and flat observations, and a known success threshold."""
    env_spec(env_id)
    require_success_threshold(env_profile(env_id, **env_settings))


def config_env_settings(config_file: ConfigFile | None) -> dict:
    """The config file's [env] values that it gives (success threshold, reward bound)."""
    if config_file is None:
        return {}
    return {k: v for k, v in dataclasses.asdict(config_file.env).items() if v is not None}


def _config_file(path: str | None, invocation_dir: Path) -> ConfigFile | None:
    if path is None:
        return None
    try:
        return load_config_file(invocation_dir / path)
    except ConfigError as exc:
        raise pytest.UsageError(f"--ablation-config: {exc}") from None


def diagnosis_plan(
    config_file: ConfigFile, profile: str, seeds: int | None, max_seeds: int | None, steps: int | None
) -> DiagnosisPlan:
    """The plan of a diagnosis (ablations.diagnosis.plan.build_plan) as every session sizes it:
    the one place the CLI and the session get it from."""
    config = config_file.config
    return build_plan(
        config,
        profile,
        PROFILES[profile].seeds,
        lambda c, n: sized_config(c, c.env_id, n),
        seeds_option=seeds,
        max_seeds_option=max_seeds,
        steps_option=steps,
    )


def _with_ladder(settings: AblationSettings, config: pytest.Config) -> AblationSettings:
    """The diagnosis' variants from its plan (--ablation-plan, or built here): the base sized to the
    plan's budget, then the rungs trained through --ablation-stage."""
    loaded = settings.config_file
    path, stage = config.getoption("ablation_plan"), config.getoption("ablation_stage")
    if path is not None:
        try:
            plan = read_plan(Path(config.invocation_params.dir) / path)
        except ValueError as exc:
            raise pytest.UsageError(f"--ablation-plan: {exc}") from None
    else:
        profile = settings.profile.removesuffix(" (overridden)")
        plan = diagnosis_plan(
            loaded,
            profile,
            config.getoption("ablation_seeds"),
            config.getoption("ablation_max_seeds"),
            config.getoption("ablation_steps"),
        )
    settings = dataclasses.replace(settings, env_steps=plan.steps)
    base_config = sized_config(loaded.config, settings.env_id, plan.steps)  # the plan's budget, a prefix or not
    base = Variant(loaded.name, base_config, f"Your DQN ({loaded.path.name}) as given.", None)
    rungs, skipped = one_knob_ladder(base_config)
    by_key = {rung.key: rung for rung in rungs}
    if tuple(by_key) != plan.ladder:
        raise pytest.UsageError(f"--ablation-plan: ladder={list(plan.ladder)} is not this config's {list(by_key)}")
    trained = [by_key[key] for key in plan.trained_through(stage)]
    variants = [base] + [Variant(f"{loaded.name}+{rung.key}", rung.config, rung.description, None) for rung in trained]
    return dataclasses.replace(
        settings,
        seeds=tuple(range(plan.seeds)),
        # Stage 0 trains the first look only: its verdicts are replaced by stage 1's, which add seeds.
        max_seeds=plan.max_seeds if stage != BASE_STAGE else None,
        session_variants=tuple(variants),
        skipped_rungs=tuple(skipped),
        diagnosis_plan=plan,
        diagnosis_stage=stage,
    )
