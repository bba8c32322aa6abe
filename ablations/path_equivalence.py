"""Do the engine's fast, compiled and fused paths train the same DQN as the exact path, in distribution?

    dqn-ablations path-equivalence [--variant article-target] [--seeds 20] [--steps 50000] --out DIR

Short runs agree within float tolerance (tests/test_fast_path.py, test_compiled_path.py, test_fused_path.py);
over a standard run a flipped near-tie argmax sends a seed down another trajectory, so the paths
can only agree in distribution. Each path trains the same seeds on the variant's standard run
(its own preset: eval every 1,000 steps, 10 greedy episodes) and the seeds' outcomes are compared
with margins fixed here before any run was looked at:

- late return (the suite's: mean greedy return over the last 20% of checkpoints): two one-sided
  Welch t-tests (TOST) on the difference of the paths' means, equivalent when the 90% interval
  of the difference lies within +-LATE_RETURN_MARGIN;
- outcome counts (success, soft divergence and collapse, the suite's definitions in
  reports/analysis/metrics.py): per outcome, equivalent when the 90% Newcombe interval of the
  difference of the two rates lies within +-OUTCOME_RATE_MARGIN.

Each path's run is saved (agents.results' open formats) as it finishes, so an interrupted
comparison keeps what it trained and a later call reuses it; `--table` prints the verdicts
from a folder. A long run, not a test: about a CPU-hour per path at the defaults on one core.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

from agents.config import ENGINE_PATHS
from reports.analysis.stats import ALPHA, wilson_interval

# Fixed before any path comparison was run. A tenth of CartPole-v1's return range (0-500): a
# shift smaller than the spread between seeds of one variant, far smaller than the differences
# the suite's claims rest on (a variant that learns against one that does not).
LATE_RETURN_MARGIN = 50.0
# A difference of 35 percentage points in an outcome's rate: with 20 seeds per path, the
# tightest margin two equal counts can be shown within (the interval's half-width is near 0.3).
OUTCOME_RATE_MARGIN = 0.35
OUTCOMES = ("success", "soft_diverged", "collapsed")


def tost_means(x, y, margin: float, alpha: float = ALPHA) -> dict:
    """Welch TOST of mean(x) - mean(y) within +-margin: both one-sided p-values below alpha."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    lower = scipy_stats.ttest_ind(x + margin, y, equal_var=False, alternative="greater").pvalue
    upper = scipy_stats.ttest_ind(x - margin, y, equal_var=False, alternative="less").pvalue
    diff = float(x.mean() - y.mean())
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1)) if se > 0 else float("inf")
    half = float(scipy_stats.t.ppf(1 - alpha, df) * se) if se > 0 else 0.0
    p = float(max(lower, upper))
    return {
        "difference": diff,
        "interval_90": [diff - half, diff + half],
        "margin": margin,
        "p_value": p,
        "equivalent": bool(p < alpha),
    }


def newcombe_difference(k1: int, n1: int, k2: int, n2: int, confidence: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p1 - p2 (from Wilson intervals of each rate)."""
    a, b = wilson_interval(k1, n1, confidence), wilson_interval(k2, n2, confidence)
    p1, p2 = k1 / n1, k2 / n2
    d = p1 - p2
    low = d - math.sqrt((p1 - a.low) ** 2 + (b.high - p2) ** 2)
    high = d + math.sqrt((a.high - p1) ** 2 + (p2 - b.low) ** 2)
    return low, high


def outcome_equivalence(x: np.ndarray, y: np.ndarray, margin: float, alpha: float = ALPHA) -> dict:
    """Rates of a boolean outcome in two paths, equivalent when the (1 - 2 alpha) interval of their
    difference lies within +-margin."""
    k1, k2 = int(np.sum(x)), int(np.sum(y))
    low, high = newcombe_difference(k1, len(x), k2, len(y), 1 - 2 * alpha)
    return {
        "counts": [k1, k2],
        "seeds": [len(x), len(y)],
        "interval_90": [low, high],
        "margin": margin,
        "equivalent": bool(-margin < low and high < margin),
    }


def compare(reference: dict, other: dict) -> dict:
    """The verdicts of one path against the reference, from their per-seed summaries."""
    verdict = {"late_return": tost_means(other["late_return"], reference["late_return"], LATE_RETURN_MARGIN)}
    for outcome in OUTCOMES:
        if outcome in reference and outcome in other:
            verdict[outcome] = outcome_equivalence(
                np.asarray(other[outcome]), np.asarray(reference[outcome]), OUTCOME_RATE_MARGIN
            )
    return verdict


def _train_path(variant: str, path: str, seeds: list[int], steps: int | None, folder: Path) -> dict:
    """Train (or reuse) one path's run; its per-seed summary as lists."""
    import torch

    from agents.catalogue.presets import get_variant
    from agents.engine.loop import train
    from agents.results import RunResult
    from reports.analysis.metrics import seed_summary

    torch.set_num_threads(1)
    summary_file = folder / f"{path}.json"
    if summary_file.exists():
        return json.loads(summary_file.read_text())
    config = get_variant(variant).config
    if steps is not None:
        config = config.replace(total_env_steps=steps)
    started, cpu = time.perf_counter(), time.process_time()
    record = train(config, seeds, path=path)
    run = RunResult.from_record(variant, record)
    run.save(folder / path)
    frame = seed_summary(run)
    summary = {
        "path": path,
        "seeds": seeds,
        "total_env_steps": config.total_env_steps,
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
        "compile_s": record.compile_s,
        **{c: frame[c].tolist() for c in ("late_return", *OUTCOMES) if c in frame},
    }
    _write_json(summary_file, summary)
    return summary


def _write_json(file: Path, data: dict) -> None:
    with tempfile.NamedTemporaryFile("w", dir=file.parent, delete=False, suffix=".tmp") as handle:
        json.dump(data, handle, indent=2)
    os.replace(handle.name, file)


def _table(folder: Path) -> int:
    files = {path: folder / f"{path}.json" for path in ENGINE_PATHS}
    summaries = {path: json.loads(file.read_text()) for path, file in files.items() if file.exists()}
    if "exact" not in summaries:
        print(f"--out {folder}: no exact.json there (train the exact path first)", file=sys.stderr)
        return 2
    verdicts = {}
    for path, summary in summaries.items():
        late = np.asarray(summary["late_return"])
        print(
            f"{path:<9} {len(late)} seeds x {summary['total_env_steps']:,} steps: late return mean {late.mean():6.1f} "
            f"(sd {late.std(ddof=1):5.1f}), "
            + ", ".join(f"{o} {int(np.sum(summary[o]))}" for o in OUTCOMES if o in summary)
            + f"; {summary['cpu_s']:.0f} CPU s"
        )
    for path in summaries:
        if path == "exact":
            continue
        verdicts[path] = verdict = compare(summaries["exact"], summaries[path])
        t = verdict["late_return"]
        print(
            f"{path} - exact, late return: {t['difference']:+.1f}, 90% CI [{t['interval_90'][0]:+.1f}, "
            f"{t['interval_90'][1]:+.1f}] within +-{t['margin']:g}: "
            f"{'equivalent' if t['equivalent'] else 'not shown equivalent'} (TOST p = {t['p_value']:.3g})"
        )
        for outcome in OUTCOMES:
            if outcome in verdict:
                o = verdict[outcome]
                print(
                    f"{path} - exact, {outcome}: {o['counts'][0]}/{o['seeds'][0]} vs {o['counts'][1]}/{o['seeds'][1]}, "
                    f"90% CI [{o['interval_90'][0]:+.2f}, {o['interval_90'][1]:+.2f}] within +-{o['margin']:g}: "
                    f"{'equivalent' if o['equivalent'] else 'not shown equivalent'}"
                )
    _write_json(folder / "verdicts.json", verdicts)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dqn-ablations path-equivalence", description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="article-target", help="the preset trained on every path")
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 on every path")
    parser.add_argument("--steps", type=int, default=None, help="env steps per run (default: the preset's)")
    parser.add_argument("--paths", default=",".join(ENGINE_PATHS), help="paths to train, comma-separated")
    parser.add_argument("--out", required=True, help="folder for the runs, their summaries and verdicts.json")
    parser.add_argument("--table", action="store_true", help="only print the verdicts of a folder's runs")
    args = parser.parse_args(argv)
    from agents.catalogue.presets import VARIANTS

    if args.variant not in VARIANTS:
        print(f"--variant={args.variant!r} is invalid: not a preset (see dqn-ablations variants)", file=sys.stderr)
        return 2
    paths = [p.strip() for p in args.paths.split(",")]
    if any(p not in ENGINE_PATHS for p in paths):
        print(f"--paths={args.paths!r} is invalid: each must be one of {', '.join(ENGINE_PATHS)}", file=sys.stderr)
        return 2
    if args.seeds < 2:
        print(f"--seeds={args.seeds} is invalid: a comparison needs at least 2 seeds per path", file=sys.stderr)
        return 2
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    if not args.table:
        for path in paths:
            summary = _train_path(args.variant, path, list(range(args.seeds)), args.steps, folder)
            print(f"{path}: trained ({summary['wall_s']:.0f} s wall)", flush=True)
    return _table(folder)


if __name__ == "__main__":
    sys.exit(main())
