"""`dqn-ablations diagnose my-dqn.toml`: a thin wrapper around the pytest suite.

`dqn-ablations lint my-dqn.toml` reads the config only (agents/diagnosis/lint.py): one finding a
line, exit 0 with none, 1 with findings, 2 on bad input. `diagnose` prints the same lint first.

It checks the config file first (one line on any problem, nothing trained), then runs
`pytest --pyargs ablations --ablation-config FILE` on all cores, prints the named causes (what is
wrong, most likely first: reports/diagnosis/cause.py) and where the report is.
Verdicts on the changes (a change that hurts is a failed test) are findings, not errors: the
command exits 0 when the diagnosis was made, and non-zero on bad input or a crash.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ablations.diagnosis.plan import BASE_STAGE, read_plan
from ablations.diagnosis.repair import REPAIRED_FILE, RepairFailed, repair_path
from ablations.diagnosis.staged import StageFailed, plan_lines, run_staged
from ablations.options import EXECUTORS, PROFILES
from ablations.settings import check_env, config_env_settings, diagnosis_plan
from agents.config import ENGINE_PATHS
from agents.configfile import ConfigFile, EnvSettings, load_config_file
from agents.diagnosis.lint import lint
from agents.importers.formats import SOURCES, import_source, imported_toml
from reports.diagnosis.cause import diagnosis_causes
from reports.diagnosis.record import Diagnosis
from reports.render.html import build_report, cause_sentence, write_text_atomically
from reports.results import load_results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dqn-ablations", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lint_command = sub.add_parser("lint", help="check your DQN's config for known problems, without training")
    diagnose = sub.add_parser("diagnose", help="train your DQN and the one-knob ladder around it; write the report")
    for command in (lint_command, diagnose):
        command.add_argument("config", help="your DQN as a TOML file (see examples/), or a --from source file")
        command.add_argument(
            "--from",
            dest="source",
            choices=SOURCES,
            default=None,
            help="the file is a Stable-Baselines3, rl-baselines3-zoo or CleanRL config (dqn-ablations import)",
        )
        command.add_argument("--env", default=None, help="with --from: the env id (rl-zoo: which entry)")
        command.add_argument("--steps", type=int, default=None, help="with --from sb3: total_timesteps if not given")
    diagnose.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="quick",
        help="run size (default quick: the fewest seeds that can settle a change, doubled on demand, "
        "your steps up to what a 3-minute first screen affords; standard: 20 seeds x your steps)",
    )
    diagnose.add_argument(
        "--thorough",
        action="store_true",
        help="train the whole ladder after the triage changes, even when one of them settled a cause",
    )
    diagnose.add_argument("--out", default=None, help="results folder (default diagnosis-<name>)")
    diagnose.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="repair path: apply the best change and diagnose again, at most N times (default 3; 0: no repair)",
    )
    diagnose.add_argument("--cache", default=".ablation-cache", help="trained-run cache (default .ablation-cache)")
    diagnose.add_argument("--workers", default="auto", help="pytest-xdist workers (default auto: one per core)")
    diagnose.add_argument("--max-seeds", type=int, default=None, help="seeds on demand for unsettled changes")
    diagnose.add_argument(
        "--no-futility", action="store_true", help="with --max-seeds: give every unsettled change every look"
    )
    diagnose.add_argument(
        "--max-batch", type=int, default=None, help="at most N agents per training batch (bounds what a cut loses)"
    )
    diagnose.add_argument(
        "--engine-path",
        choices=ENGINE_PATHS,
        default="exact",
        help="the engine path to train on (default exact, bit-identical to the textbook DQN; fused, compiled "
        "and fast agree within float tolerance and train faster: docs/speed.md)",
    )
    diagnose.add_argument(
        "--executor", choices=EXECUTORS, default="local", help="where runs train (ray: Ray tasks; default local)"
    )
    diagnose.add_argument(
        "--ray-address", default=None, help="with --executor ray: the cluster (HOST:PORT); default a local instance"
    )
    return parser


def pytest_args(args: argparse.Namespace, name: str, config: str | None = None, out: str | None = None) -> list[str]:
    """The pytest command line of a diagnosis session (of args.config, or of a repair round's)."""
    out = out or args.out or f"diagnosis-{name}"
    command = [
        "--pyargs",
        "ablations",
        f"--ablation-config={config or args.config}",
        f"--ablation-profile={args.profile}",
        f"--ablation-out={out}",
        f"--ablation-cache={args.cache}",
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    if args.executor == "ray":
        # Ray spreads the training; the tests themselves are light and run in this process.
        command.append("--ablation-executor=ray")
        if args.ray_address is not None:
            command.append(f"--ablation-ray-address={args.ray_address}")
    elif args.workers not in ("0", "1"):
        command += ["-n", args.workers]
    if args.max_seeds is not None:
        command.append(f"--ablation-max-seeds={args.max_seeds}")
    if args.no_futility:
        command.append("--ablation-no-futility")
    if args.max_batch is not None:
        command.append(f"--ablation-max-batch={args.max_batch}")
    if args.engine_path != "exact":
        command.append(f"--ablation-engine-path={args.engine_path}")
    return command


def plan(loaded: ConfigFile, args: argparse.Namespace) -> str:
    """What the diagnosis will train, before anything does (ablations.diagnosis.staged.plan_lines of
    the plan the sessions train: ablations.settings.diagnosis_plan)."""
    built = diagnosis_plan(loaded, args.profile, None, args.max_seeds, None)
    return "\n".join(plan_lines(built, loaded.name, args.cache, args.thorough))


def lint_lines(loaded: ConfigFile) -> list[str]:
    """The config's lint findings as printed: 'lint: FILE: field = value: why; fix'."""
    return [f"lint: {loaded.path.name}: {finding.line()}" for finding in lint(loaded.config)]


def cause_lines(results: Path, shown: int = 3) -> list[str]:
    """The diagnosis' named causes as printed, most likely first: 'cause: KIND: sentence'."""
    causes = diagnosis_causes(Diagnosis.from_results(load_results(results)))
    if not causes:
        return ["cause: none named (no lint finding, and no single change settled as helping)"]
    return [f"cause: {cause.kind}: {cause_sentence(cause)}" for cause in causes[:shown]]


def load_config(args: argparse.Namespace) -> ConfigFile:
    """The config file, or (--from) the imported source written as one beside the results folder
    (diagnose) and read back, so the session trains exactly the file the user can open."""
    if args.source is None:
        return load_config_file(args.config)
    imported = import_source(args.source, Path(args.config), args.env, args.steps)
    if args.command == "lint":
        return ConfigFile(Path(args.config), imported.name, imported.config, EnvSettings())
    path = Path(f"{args.out or f'diagnosis-{imported.name}'}.toml")
    write_text_atomically(path, imported_toml(imported))
    print(f"imported: {args.source} {args.config} -> {path}")
    return load_config_file(path)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        loaded = load_config(args)
        # The session checks the env too; checked here first, the error is the only line printed.
        check_env(loaded.config.env_id, config_env_settings(loaded))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    findings = lint_lines(loaded)
    if args.command == "lint":
        print("\n".join(findings) if findings else f"lint: {loaded.path.name}: no finding")
        return 1 if findings else 0
    print("\n".join([*findings, plan(loaded, args)]), flush=True)
    results = Path(args.out or f"diagnosis-{loaded.name}")
    try:
        outcome = run_staged(
            diagnosis_plan(loaded, args.profile, None, args.max_seeds, None),
            results,
            args.thorough,
            lambda stage, plan_file, out: run_stage(args, loaded, stage, plan_file, out),
            cause_lines,
            lambda line: print(line, flush=True),
        )
    except StageFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"stages: {', '.join(map(str, outcome.stages))} in {', '.join(f'{s:.0f}' for s in outcome.stage_seconds)} s")
    if args.rounds > 0:
        status = repair(loaded, args, results)
        if status:
            return status
    print(f"diagnosis: {(results / 'report.html').resolve()}")
    return 0


def run_stage(args: argparse.Namespace, loaded: ConfigFile, stage: int, plan_file: Path, out: Path) -> None:
    """One stage of the diagnosis (ablations.diagnosis.staged) as a pytest session of its own process."""
    command = [sys.executable, "-m", "pytest", *pytest_args(args, loaded.name, str(loaded.path), str(out))]
    command += [f"--ablation-plan={plan_file}", f"--ablation-stage={stage}"]
    if stage == BASE_STAGE:  # the base's record is read; the report comes with stage 1
        command.append("--ablation-no-report")
        # The early rungs' tests run (valid, and replaced by stage 1's verdicts): with a test each, every
        # xdist worker trains its share. Without early rungs an empty parametrization would read as a crash.
        if not read_plan(plan_file).early:
            command += ["-k", "not test_change"]
    done = subprocess.run(command)
    # Test failures are verdicts (the DQN does not train, a change hurts); a crash is not.
    if (
        done.returncode not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
        or not (out / "tests.parquet").exists()
    ):
        raise StageFailed(f"stage {stage}'s session failed (exit {done.returncode})")
    crashed = pd.read_parquet(out / "tests.parquet").query("verdict == 'error' or outcome == 'error'")
    if len(crashed):
        raise StageFailed(f"{len(crashed)} test(s) crashed: {', '.join(crashed['test'])}")


def repair(loaded: ConfigFile, args: argparse.Namespace, results: Path) -> int:
    """The repair path from round 1's results (ablations.diagnosis.repair); each later round is a pytest
    session of its own process (pytest.main runs once per process), then round 1's report is
    rebuilt with the path."""

    def run_round(config: Path, out: Path) -> None:
        command = [sys.executable, "-m", "pytest", *pytest_args(args, loaded.name, str(config), str(out))]
        print(f"repair: diagnosing {config.name}", flush=True)
        done = subprocess.run(command)
        if (
            done.returncode not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
            or not (out / "report.html").exists()
        ):
            raise RepairFailed(f"the session for {config} failed (exit {done.returncode})")

    try:
        steps = repair_path(loaded, results, args.rounds, run_round)
    except RepairFailed as exc:
        print(f"error: repair path: {exc}", file=sys.stderr)
        return 1
    for step in steps:
        print(f"repair: {step.line()}")
    build_report(results)
    if (results / REPAIRED_FILE).exists():
        print(f"repaired config: {(results / REPAIRED_FILE).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
