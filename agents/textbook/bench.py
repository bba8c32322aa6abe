"""Throughput benchmark: the batched engine against the article's own training loop, in one run.

    dqn-ablations bench [--repeats 3] [--steps 2000] [--out bench-results]

Every measurement runs in a fresh process with one torch thread (so figures are per core
and peak RSS belongs to that measurement alone); the table reports the median of the
repeats, the ratio to the baseline measured in the same run, and the share of the arithmetic
limit, i.e. FLOPs per agent-step times agent-steps/s over the FLOP/s of a large single-thread
sgemm measured in the same run. Greedy evaluation is off: this measures training. The baseline
is agents/textbook/article_loop.py: the article's loop as its readers write it (nn.Module, deque replay,
random.sample, gymnasium.make), the code a user would otherwise run. With the `bench` extra
installed (jax), a PureJaxRL-style DQN (agents/bench_jax.py) runs beside the engine at every K
of article-target, its compile time reported apart, and so does a torch DQN compiled one graph
per env step (agents/textbook/bench_step_graph.py: what fusing the engine's step would buy);
the engine, its paths and the peers take
turns within each repeat, so a change in the machine's load falls on all of them. The compiled
path's compile time is reported apart too: once with an empty compile cache (what a user pays
once per network shape) and, per measurement, the time to compile or load its graph.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("article-target", "article-naive")
SEED_COUNTS = (1, 8, 32, 64)
# A mixed family of the suite's replay variants, 16 seeds each: 64 seeds on one axis.
MIXED_FAMILY = ("article-replay", "article-target", "replay-polyak", "replay-target-double")
MIXED_SEEDS_EACH = 16
MEMORY_CHECK = {"variant": "article-target", "seeds": 64, "replay_capacity": 50_000, "steps": 600}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _measure(kind: str, variant: str, seeds: int, steps: int, changes: dict) -> dict:
    """Run in a child process: train and time one configuration. Both the wall-clock rate and
    the rate per second of this process's CPU time are returned: on a machine shared with other
    work the second is what one core of its own would give (up to cache sharing)."""
    import torch

    torch.set_num_threads(1)
    from agents.catalogue.presets import get_variant

    config = get_variant(variant).config.replace(total_env_steps=steps, eval_episodes=0, **changes)
    if kind == JAX_PEER:
        from agents.textbook.bench_jax import measure, peer_config

        result = measure(seeds, steps, peer_config(config))
        return {"peak_rss_mib": _peak_rss_mib(), **result}
    if kind == STEP_GRAPH:
        from agents.textbook.bench_step_graph import measure

        return {"peak_rss_mib": _peak_rss_mib(), **measure(seeds, steps, config)}
    compile_s = None
    if kind in COMPILED_KINDS:
        compile_s = _warm_up(kind, config, seeds)
    started, cpu_started = time.perf_counter(), time.process_time()
    if kind == "article-loop":
        from agents.textbook.article_loop import article_loop

        article_loop(config, steps)
    elif kind in FAMILY_KINDS:
        from agents.engine.loop import train_family

        train_family(_mixed_family(steps), path=FAMILY_KINDS[kind])
    else:
        from agents.engine.loop import train

        train(config, list(range(seeds)), path=ENGINE_KINDS[kind])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    result = {
        "agent_steps_per_s": seeds * steps / elapsed,
        "cpu_agent_steps_per_s": seeds * steps / cpu,
        "peak_rss_mib": _peak_rss_mib(),
    }
    return result if compile_s is None else {**result, "compile_s": compile_s}


def _mixed_family(steps: int) -> list:
    from agents.catalogue.presets import get_variant

    return [
        (get_variant(name).config.replace(total_env_steps=steps, eval_episodes=0), list(range(MIXED_SEEDS_EACH)))
        for name in MIXED_FAMILY
    ]


def _warm_up(kind: str, config, seeds: int) -> float:
    """Seconds to get the compiled path's graphs into this process (compiled, or loaded from the
    user's compile cache): a run just long enough to call each of them, not timed with the run."""
    from agents.engine.loop import train, train_family
    from agents.engine.stepgraph import steps_calling_every_graph

    def short(c):
        return c.replace(total_env_steps=steps_calling_every_graph(c))

    started = time.perf_counter()
    if kind in FAMILY_KINDS:
        train_family([(short(c), s) for c, s in _mixed_family(200)], path=FAMILY_KINDS[kind])
    else:
        train(short(config), list(range(seeds)), path=ENGINE_KINDS[kind])
    return time.perf_counter() - started


def cold_compile_seconds(variant: str) -> float:
    """Run in a child process: seconds the compiled path's first run at K = 2 spends compiling
    its graph with an empty compile cache (what a user pays once per network shape)."""
    cache = tempfile.mkdtemp(prefix="dqn-ablations-cold-compile-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    import torch

    torch.set_num_threads(1)
    from agents.catalogue.presets import get_variant
    from agents.engine.loop import train

    config = get_variant(variant).config.replace(eval_episodes=0)
    record = train(config.replace(total_env_steps=config.learning_starts + 1), [0, 1], path="compiled")
    return record.compile_s


def _gemm_flops_per_s() -> float:
    """FLOP/s of a 512^3 single-thread float32 matmul: the arithmetic limit of one core."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    for _ in range(3):
        a @ b
    repeats = 40
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return repeats * 2 * 512**3 / (time.perf_counter() - started)


def flops_per_agent_step(variant: str) -> float:
    """Arithmetic of one agent-step: acting forward on one state, plus per gradient update a
    forward and backward (weight and input gradients) on the batch and the target forward."""
    from agents.catalogue.presets import get_variant
    from agents.engine.envs import env_spec
    from agents.engine.networks import layer_sizes

    config = get_variant(variant).config
    spec = env_spec(config.env_id)
    sizes = layer_sizes(spec.obs_dim, config.hidden_sizes, spec.num_actions)
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))  # multiply-adds per sample
    forwards_per_update = 1 + 1 + (1 if config.double_q else 0)  # online, target (s'), double-Q pick
    backward = 2  # weight and input gradients cost about two forwards
    per_update = 2 * macs * config.batch_size * (forwards_per_update + backward)
    return 2 * macs + per_update / config.env_steps_per_update


def _summary(results: list[dict]) -> dict:
    """Medians of the repeats (peak RSS: the largest)."""
    summary = {
        "agent_steps_per_s": statistics.median(r["agent_steps_per_s"] for r in results),
        "cpu_agent_steps_per_s": statistics.median(r["cpu_agent_steps_per_s"] for r in results),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
    }
    if "compile_s" in results[0]:
        summary["compile_s"] = statistics.median(r["compile_s"] for r in results)
    return summary


def run_one(pool, kind, variant, seeds, steps, changes, repeats):
    return _summary([pool.apply(_measure, (kind, variant, seeds, steps, changes)) for _ in range(repeats)])


def run_turns(pool, kinds: list[str], variant: str, seeds: int, steps: int, repeats: int) -> dict[str, dict]:
    """Each kind measured `repeats` times, the kinds taking turns within each repeat."""
    results: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for _ in range(repeats):
        for kind in kinds:
            results[kind].append(pool.apply(_measure, (kind, variant, seeds, steps, {})))
    return {kind: _summary(runs) for kind, runs in results.items()}


JAX_PEER = "jax-peer"
# One compiled graph per env step, no recorder (agents/textbook/bench_step_graph.py): a yardstick.
STEP_GRAPH = "torch-step-graph"
# The engine's execution paths (agents.config.ENGINE_PATHS) as bench implementations.
ENGINE_KINDS = {"engine": "exact", "engine-fast": "fast", "engine-compiled": "compiled", "engine-fused": "fused"}
FAMILY_KINDS = {
    "engine-family": "exact",
    "engine-family-fast": "fast",
    "engine-family-compiled": "compiled",
    "engine-family-fused": "fused",
}
# Kinds whose compile (or cache load) time is measured apart from their run.
COMPILED_KINDS = ("engine-compiled", "engine-family-compiled", "engine-fused", "engine-family-fused")
# The variants the JAX peer implements (agents/bench_jax.py: peer_config).
PEER_VARIANTS = ("article-target",)


def jax_available() -> bool:
    return importlib.util.find_spec("jax") is not None


def _seed_counts(text: str) -> tuple[int, ...]:
    """--seeds: positive integers separated by commas."""
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not positive integers separated by commas (e.g. 40,160)")
    return counts


def _variant_names(text: str) -> tuple[str, ...]:
    """--variants: names of the presets (agents.catalogue.presets), separated by commas."""
    from agents.catalogue.presets import VARIANTS as PRESETS

    names = tuple(part.strip() for part in text.split(","))
    unknown = [name for name in names if name not in PRESETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no preset variant ({', '.join(unknown)} unknown)")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dqn-ablations bench", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration; the median is reported")
    parser.add_argument("--steps", type=int, default=2_000, help="env steps per run")
    parser.add_argument("--out", default="bench-results", help="directory for bench.csv and bench.json")
    parser.add_argument(
        "--seeds",
        type=_seed_counts,
        default=SEED_COUNTS,
        help="batch widths K to measure, comma-separated (default 1,8,32,64); e.g. 40,160 for the cost of "
        "--ablation-max-batch 40 against a worker's whole share",
    )
    parser.add_argument(
        "--variants",
        type=_variant_names,
        default=VARIANTS,
        help=f"variants to measure at every K, comma-separated (default {','.join(VARIANTS)})",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.steps < 200:
        parser.error("--repeats must be >= 1 and --steps >= 200")

    context = multiprocessing.get_context("spawn")
    rows = []
    peak_flops = _gemm_flops_per_s()
    with_peer = jax_available()
    if not with_peer:
        print('jax-peer: skipped (jax is not installed: pip install "dqn-ablations[bench]")', flush=True)
    baselines: dict[str, dict] = {}
    with context.Pool(1, maxtasksperchild=1) as pool:
        cold_compile = pool.apply(cold_compile_seconds, (args.variants[0],))
        print(f"compiled path: {cold_compile:.1f} s to compile {args.variants[0]}'s update, cache empty", flush=True)
        for variant in args.variants:
            baseline = baselines[variant] = run_one(pool, "article-loop", variant, 1, args.steps, {}, args.repeats)
            flops = flops_per_agent_step(variant)
            peers = [STEP_GRAPH] if variant in PEER_VARIANTS else []
            kinds = [*ENGINE_KINDS, *peers] + ([JAX_PEER] if with_peer and variant in PEER_VARIANTS else [])
            runs = [("article-loop", 1, baseline)]
            for k in args.seeds:
                turns = run_turns(pool, kinds, variant, k, args.steps, args.repeats)
                runs += [(kind, k, turns[kind]) for kind in kinds]
            for kind, k, result in runs:
                rows.append(_row(variant, kind, k, result, baseline, flops / peak_flops))
                print(_format_row(rows[-1]), flush=True)
        family_seeds = len(MIXED_FAMILY) * MIXED_SEEDS_EACH
        families = run_turns(pool, list(FAMILY_KINDS), MIXED_FAMILY[0], family_seeds, args.steps, args.repeats)
        # The family's ratio is to article-target's article loop (else the first variant's).
        baseline = baselines.get("article-target", next(iter(baselines.values())))
        for kind, result in families.items():
            rows.append(
                _row(
                    "mixed: " + "+".join(MIXED_FAMILY),
                    kind,
                    family_seeds,
                    result,
                    baseline,
                    flops_per_agent_step("article-target") / peak_flops,
                )
            )
            print(_format_row(rows[-1]), flush=True)
        memory = run_one(
            pool,
            "engine",
            MEMORY_CHECK["variant"],
            MEMORY_CHECK["seeds"],
            MEMORY_CHECK["steps"],
            {"replay_capacity": MEMORY_CHECK["replay_capacity"]},
            1,
        )
    summary = {
        "steps_per_run": args.steps,
        "repeats": args.repeats,
        "gemm_gflops_per_s": round(peak_flops / 1e9, 2),
        "cold_compile_s": round(cold_compile, 1),
        "memory_check": {**MEMORY_CHECK, "peak_rss_mib": round(memory["peak_rss_mib"], 1)},
        "rows": rows,
    }
    print(f"arithmetic limit: {peak_flops / 1e9:.1f} GFLOP/s (512^3 sgemm, one thread)")
    print(
        f"memory: K={MEMORY_CHECK['seeds']} with replay capacity {MEMORY_CHECK['replay_capacity']:,}: "
        f"peak RSS {memory['peak_rss_mib']:.0f} MiB"
    )
    _write(Path(args.out), rows, summary)
    _plot(Path(args.out), rows)
    return 0


def _plot(directory: Path, rows: list[dict]) -> None:
    """bench.png: agent-steps/s per core against K, one line per variant, baseline dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for row in rows:
        if row["implementation"] in FAMILY_KINDS:
            ax.plot(
                [row["seeds"]],
                [row["agent_steps_per_s_per_core"]],
                marker="*",
                markersize=12,
                linestyle="",
                label=f"{row['variant']}: {row['implementation']}",
            )
    for variant in dict.fromkeys(row["variant"] for row in rows if row["implementation"] not in FAMILY_KINDS):
        color = None
        for kind in dict.fromkeys(r["implementation"] for r in rows if r["variant"] == variant):
            if kind == "article-loop":
                continue
            points = [r for r in rows if r["variant"] == variant and r["implementation"] == kind]
            line = ax.plot(
                [r["seeds"] for r in points],
                [r["agent_steps_per_s_per_core"] for r in points],
                marker="o",
                linestyle="-" if kind == "engine" else ":",
                color=color,
                label=f"{variant}: {kind}",
            )
            color = color or line[0].get_color()
        for r in rows:
            if r["variant"] == variant and r["implementation"] == "article-loop":
                ax.axhline(
                    r["agent_steps_per_s_per_core"], linestyle="--", color=color, label=f"{variant}: article loop"
                )
    ax.set(xscale="log", xlabel="seeds per process (K)", ylabel="agent-steps/s per core")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(directory / "bench.png", dpi=110)
    plt.close(fig)
    print(f"wrote {directory / 'bench.png'}")


def _row(variant: str, kind: str, seeds: int, result: dict, baseline: dict, flops_share: float) -> dict:
    """One table row: the medians, the ratio to the article loop and the share of the limit."""
    rate = result["agent_steps_per_s"]
    return {
        "variant": variant,
        "implementation": kind,
        "seeds": seeds,
        "agent_steps_per_s_per_core": round(rate, 1),
        "cpu_agent_steps_per_s": round(result["cpu_agent_steps_per_s"], 1),
        "ratio_to_article_loop": round(rate / baseline["agent_steps_per_s"], 2),
        "share_of_arithmetic_limit": round(rate * flops_share, 4),
        "peak_rss_mib": round(result["peak_rss_mib"], 1),
        "compile_s": round(result["compile_s"], 1) if "compile_s" in result else None,
    }


def _format_row(row: dict) -> str:
    compile_s = row.get("compile_s")
    return (
        f"{row['variant']:<15} {row['implementation']:<18} K={row['seeds']:<3} "
        f"{row['agent_steps_per_s_per_core']:>9.0f} agent-steps/s/core "
        f"({row['cpu_agent_steps_per_s']:>7.0f} per CPU s)  "
        f"x{row['ratio_to_article_loop']:<6} {100 * row['share_of_arithmetic_limit']:5.1f}% of limit  "
        f"{row['peak_rss_mib']:6.0f} MiB" + (f"  (+{compile_s:.1f} s compile or load, not timed)" if compile_s else "")
    )


def _write(directory: Path, rows: list[dict], summary: dict) -> None:
    """bench.csv and bench.json, each written to a temp file and renamed into place."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(handle.name, directory / "bench.csv")
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as handle:
        json.dump(summary, handle, indent=2)
    os.replace(handle.name, directory / "bench.json")
    print(f"wrote {directory / 'bench.csv'} and {directory / 'bench.json'}")


if __name__ == "__main__":
    sys.exit(main())
