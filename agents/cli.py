"""Command line: `dqn-ablations variants`, `bugs`, `train ...` and `import {sb3,rl-zoo,cleanrl} SOURCE`."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import torch
from tqdm import tqdm

from agents.catalogue.bugs import describe_catalogue
from agents.catalogue.presets import VARIANTS, get_variant
from agents.config import ConfigError
from agents.configfile import load_config_file
from agents.engine.loop import train
from agents.importers.formats import SOURCES, SourceError, import_source, imported_toml
from agents.results import RunResult
from agents.seeding import parse_seeds


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dqn-ablations", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("variants", help="list the named agent variants")
    sub.add_parser("bugs", help="list the bug catalogue: each bug, what it does, where it is seen, its symptom")
    run = sub.add_parser("train", help="train one variant (or your config file) on a set of seeds")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--variant", help="a name from `dqn-ablations variants`")
    source.add_argument("--config", help="a TOML file of AgentConfig fields (see examples/)")
    run.add_argument("--seeds", default="0", help="seeds: 3, 0-9 or 0,2,5-7 (default 0)")
    run.add_argument("--steps", type=_positive_int, help="env steps per seed (default: the variant's)")
    run.add_argument("--env", help="gymnasium env id (default: the variant's, CartPole-v1)")
    run.add_argument("--device", help="torch device, e.g. cpu or cuda (default: the variant's)")
    run.add_argument("--out", help="directory to save the run into (Parquet + JSON)")
    run.add_argument("--threads", type=_positive_int, default=1, help="torch threads (default 1)")
    bring = sub.add_parser(
        "import", help="turn a Stable-Baselines3, rl-baselines3-zoo or CleanRL DQN config into a config file of ours"
    )
    bring.add_argument("source", choices=SOURCES, help="sb3: DQN(...) keywords; rl-zoo: a dqn.yml; cleanrl: Args")
    bring.add_argument("file", help="JSON or a Python dict literal (sb3, cleanrl), YAML (rl-zoo), or CleanRL's flags")
    bring.add_argument("--env", help="the env id (rl-zoo: which entry; sb3: if the keywords have no env)")
    bring.add_argument("--steps", type=_positive_int, help="sb3: total_timesteps, if the keywords have none")
    bring.add_argument("-o", "--output", help="the TOML to write (default: print it)")
    return parser


def import_command(args: argparse.Namespace) -> int:
    """`dqn-ablations import`: the TOML on stdout or in --output; one line and exit 2 on a key
    it cannot run exactly."""
    try:
        text = imported_toml(import_source(args.source, Path(args.file), args.env, args.steps))
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output is None:
        print(text, end="")
        return 0
    out = Path(args.output)
    try:
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text)
        tmp.replace(out)
    except OSError as exc:
        print(f"error: -o={args.output!r}: cannot write ({exc.strerror})", file=sys.stderr)
        return 2
    print(f"wrote {out} (lint it: dqn-ablations lint {out})")
    return 0


def summary_lines(result: RunResult) -> list[str]:
    """One line per seed: final and best greedy return, peak max |Q|, divergence."""
    frame = result.checkpoints
    lines = []
    for seed, rows in frame.groupby("seed", sort=True):
        final = rows.iloc[-1]
        diverged = f"diverged at step {int(final['diverged_step'])}" if final["diverged"] else "finite"
        lines.append(
            f"{result.variant} seed {seed}: final eval return {final['eval_return']:.1f}, "
            f"best {rows['eval_return'].max():.1f}, peak max|Q| {rows['max_abs_q'].max():.4g}, {diverged}"
        )
    return lines


def check_writable(directory: str) -> str | None:
    """Why a run could not be saved under `directory`, or None if it can: checked before
    training, so a bad --out costs nothing."""
    path = Path(directory)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        return f"--out={directory!r} is invalid: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"--out={directory!r} is invalid: {existing} is not writable"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"--out={directory!r} is invalid: {exc.strerror.lower()} ({exc.filename})"
    return None


def save_or_keep(result: RunResult, directory: str, name: str) -> tuple[Path, str | None]:
    """Save the run; if the write still fails, keep it in a fresh temp folder and say why."""
    try:
        return result.save(Path(directory) / name), None
    except OSError as exc:
        fallback = Path(tempfile.mkdtemp(prefix="dqn-ablations-run-")) / name
        return result.save(fallback), f"could not write to {directory} ({exc.strerror}); the run is kept instead"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bugs":
        print("\n".join(describe_catalogue()))
        return 0
    if args.command == "import":
        return import_command(args)
    if args.command == "variants":
        width = max(len(name) for name in VARIANTS)
        for name, variant in VARIANTS.items():
            expected = variant.expected_outcome or "sweep point, no claim"
            print(f"{name:<{width}}  {variant.summary}  [expected: {expected}]")
        return 0
    try:
        env_settings = None
        if args.config is not None:
            loaded = load_config_file(args.config)
            name, base, env_settings = loaded.name, loaded.config, dataclasses.asdict(loaded.env)
        else:
            variant = get_variant(args.variant)
            name, base = variant.name, variant.config
        seeds = parse_seeds(args.seeds)
        changes = {}
        if args.steps is not None:
            changes["total_env_steps"] = args.steps
        if args.env is not None:
            changes["env_id"] = args.env
        if args.device is not None:
            changes["device"] = args.device
        config = base.replace(**changes)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out and (problem := check_writable(args.out)) is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    try:
        with tqdm(
            total=config.total_env_steps,
            unit="step",
            desc=f"{name} x{len(seeds)} seeds",
            mininterval=1.0,
            disable=None,  # no bar when stderr is not a terminal (CI logs)
        ) as bar:
            record = train(config, seeds, progress=bar.update)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = RunResult.from_record(name, record, env_settings)
    for line in summary_lines(result):
        print(line)
    if args.out:
        directory, problem = save_or_keep(result, args.out, f"{name}-{config.content_hash()}")
        if problem is not None:
            print(f"error: {problem}: {directory}", file=sys.stderr)
            return 1
        print(f"saved {directory}")
    return 0
