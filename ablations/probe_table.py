"""`dqn-ablations probe-table`: the probes' tables, built by running the battery on known cases.

Two kinds of rows, each a whole battery (every probe, --seeds seeds), run one after another:

- examples: every function of examples/byo/*.py and examples/byo/buggy/*.py that declares what
  it expects (`EXPECTED_CAUSE = "..."` or None beside `train`, or `EXPECTED_CAUSES = {function:
  cause}`), with the battery's wall time, CPU time and load average: the buggy-set benchmark;
- engine (--engine): every catalogued bug and article quirk injected into the engine's bug-free
  preset, and every bug-free preset: the bug x probe table.

Writes, atomically after every row (an interrupted build keeps the finished rows and resumes):
results.parquet (every row's per-seed Q, what the causes are read from), rows.parquet (one line
per row: expected cause, cause named first, times), cells.parquet (row x probe: verdict, causes)
and tables.md. --reread names the causes again from results.parquet without training.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS_FILE, ROWS_FILE, CELLS_FILE, MARKDOWN_FILE = "results.parquet", "rows.parquet", "cells.parquet", "tables.md"

# EXPECTED_CAUSE (the examples' vocabulary, set before any run) -> the probe causes that count as
# naming it. The first names of each were fixed before the buggy set first ran (docs/byo-cases.md);
# the causes added for a bug that had none (next_state_not_stored, batch_summed, argmax_as_value,
# epsilon_never_decays) are added to its entry. Aliased targets and acting with the target network
# have no probe cause: the probes' values cannot show them.
EXPECTED_TO_CAUSES: dict[str, tuple[str, ...]] = {
    "terminal_not_masked": ("unmasked",),
    "time_limit_as_terminal": ("time_limit_terminal",),
    "loss_shape_broadcast": ("broadcast",),
    "reset_observation_dropped": ("reset_dropped",),
    "next_state_not_stored": ("no_bootstrap", "next_state_not_stored"),
    "wrong_discount": ("wrong_discount",),
    "action_value_selection": ("actions_ignored", "broadcast", "greedy_gather", "batch_summed"),
    "too_few_updates": ("too_slow", "no_learning"),
    "argmax_as_value": ("argmax_as_value",),
    "epsilon_never_decays": ("epsilon_never_decays",),
    "target_network_aliased": (),
    "acting_with_target_network": (),
}


class BadInput(ValueError):
    """A command-line value is invalid; the message names it."""


@dataclass(frozen=True)
class Row:
    """One battery of the table: what runs, and what it is expected to show."""

    label: str
    kind: str  # "example" or "engine"
    spec: str  # FILE.py:FUNCTION, or engine:NAME
    expected: str | None  # EXPECTED_CAUSE; None: no bug
    declared: bool = True  # whether the file declared an expectation (engine rows: the bug's name)

    def __post_init__(self) -> None:
        if self.kind not in ("example", "engine"):
            raise ValueError(f"kind={self.kind!r} is invalid: must be 'example' or 'engine'")


def declared_expectations(path: Path) -> dict[str, str | None] | None:
    """{function: expected cause} a file declares, read from its source without running it
    (EXPECTED_CAUSES, else EXPECTED_CAUSE for `train`); None when it declares nothing."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("EXPECTED_CAUSE", "EXPECTED_CAUSES"):
                try:
                    found[name] = ast.literal_eval(node.value)
                except ValueError:
                    raise BadInput(f"{path}: {name} is invalid: give a literal") from None
    if "EXPECTED_CAUSES" in found:
        causes = found["EXPECTED_CAUSES"]
        if not isinstance(causes, dict):
            raise BadInput(f"{path}: EXPECTED_CAUSES is invalid: give a dict of function -> cause or None")
        return dict(causes)
    if "EXPECTED_CAUSE" in found:
        return {"train": found["EXPECTED_CAUSE"]}
    return None


def example_rows(folder: Path) -> list[Row]:
    """Every declared function of folder/*.py and folder/buggy/*.py, files in name order."""
    if not folder.is_dir():
        raise BadInput(f"--examples={str(folder)!r} is invalid: no such folder")
    rows = []
    for path in sorted(folder.glob("*.py")) + sorted(folder.glob("buggy/*.py")):
        expected = declared_expectations(path)
        if expected is None:
            continue
        for function, cause in expected.items():
            if cause is not None and cause not in EXPECTED_TO_CAUSES:
                raise BadInput(f"{path}: expected cause {cause!r} is invalid: one of {', '.join(EXPECTED_TO_CAUSES)}")
            label = f"{path.relative_to(folder).as_posix()}:{function}"
            rows.append(Row(label, "example", f"{path}:{function}", cause))
    return rows


def engine_rows() -> list[Row]:
    """Every catalogued bug injected into the bug-free preset with replay and a hard target (the
    target-gradient bug, which needs no target network, into the one without; the epsilon bug into
    a copy that decays), and every bug-free preset."""
    from agents.catalogue.bugs import CATALOGUE
    from agents.catalogue.presets import VARIANTS
    from agents.config import BUG_FIELDS

    rows = [Row(f"engine bug {bug.name}", "engine", f"engine-bug:{bug.name}", bug.name, False) for bug in CATALOGUE]
    for name, variant in VARIANTS.items():
        config = variant.config
        bug_free = not any(getattr(config, f) for f in BUG_FIELDS)
        if config.terminal_masking and config.bootstrap_on_truncation and bug_free:
            rows.append(Row(f"bug-free preset {name}", "engine", f"engine:{name}", None, False))
    return rows


def make_agent(row: Row):
    from agents.probes.adapters import EngineAgent, engine_agent, function_agent

    if row.spec.startswith("engine-bug:"):
        from agents.catalogue.bugs import BUGS
        from agents.catalogue.presets import VARIANTS

        name = row.spec.split(":", 1)[1]
        base = VARIANTS["cell-m1-d0-r1-t1"].config
        bases = {
            "target-gradient": VARIANTS["cell-m1-d0-r1-t0"].config,  # bites only without a target network
            "epsilon-at-end": base.replace(epsilon_start=1.0, epsilon_end=0.05, epsilon_decay_fraction=0.3),
        }
        return EngineAgent(BUGS[name].inject(bases.get(name, base)), name)
    if row.spec.startswith("engine:"):
        return engine_agent(row.spec)
    return function_agent(row.spec)


def cpu_seconds() -> float:
    """CPU seconds of this process and its waited-for children (the battery's workers)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_row(row: Row, seeds: list[int], workers: int) -> tuple[pd.DataFrame, dict]:
    """One battery: its per-seed results table and its timing."""
    from ablations.probe import tables
    from agents.probes.battery import run_battery
    from agents.probes.causes import explain
    from agents.results import git_commit

    agent = make_agent(row)
    load_before, cpu, started = os.getloadavg()[0], cpu_seconds(), time.perf_counter()
    battery = run_battery(agent, seeds=seeds, workers=workers)
    timing = {
        "wall_s": time.perf_counter() - started,
        "cpu_s": cpu_seconds() - cpu,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "workers": workers,
        "notes": "; ".join(battery.notes),
        "git_commit": git_commit(),
    }
    results, _ = tables(battery, explain(battery))
    return results.assign(row=row.label), timing


def battery_of(results: pd.DataFrame):
    """A row's BatteryResult from its stored per-seed results, judged again (no training)."""
    from agents.probes.battery import BatteryResult, classify, judge
    from agents.probes.envs import PROBES_BY_NAME, ProbeShape

    found, verdicts = [], []
    n_actions = int(results["action"].max()) + 1
    for probe_name, rows in results.groupby("probe", sort=False):
        probe = PROBES_BY_NAME[probe_name]
        seeds = sorted(rows["seed"].unique())
        measured, later = [], {}
        for seed in seeds:
            mine = rows[rows["seed"] == seed]
            q = np.full((len(probe.labels), n_actions), np.nan)
            for state, action, value in zip(mine["state"], mine["action"], mine["measured_q"], strict=True):
                q[probe.labels.index(state), action] = value
            if "measured_q_later" in mine and mine["measured_q_later"].notna().all():
                followed = np.full_like(q, np.nan)
                for state, action, value in zip(mine["state"], mine["action"], mine["measured_q_later"], strict=True):
                    followed[probe.labels.index(state), action] = value
                later[int(seed)] = tuple(tuple(float(v) for v in row) for row in followed)
            late = mine["late_epsilon"].iloc[0] if "late_epsilon" in mine else None
            late = None if late is None or pd.isna(late) else float(late)
            measured.append((q, float(mine["gamma"].iloc[0]), late))
        judged = judge(probe, seeds, measured, None, int(rows["steps"].iloc[0]), float(rows["seconds"].iloc[0]))
        found += [replace(r, later=later[r.seed]) if r.seed in later else r for r in judged]
        verdicts.append(classify(probe_name, judged))
    order = {name: i for i, name in enumerate(PROBES_BY_NAME)}
    verdicts.sort(key=lambda v: order[v.probe])
    seeds = tuple(sorted(results["seed"].unique()))
    return BatteryResult(str(results["row"].iloc[0]), ProbeShape(), seeds, tuple(found), tuple(verdicts), 0.0)


def read_row(row: Row, results: pd.DataFrame, timing: dict) -> tuple[dict, list[dict]]:
    """A row's summary (the cause named first against the expected one) and its cells."""
    from agents.probes.causes import explain, headline

    battery = battery_of(results)
    causes = explain(battery)
    first = headline(battery, causes)
    fails = [v for v in battery.verdicts if v.status.startswith("fail")]
    first_line = causes[fails[0].probe][0].name if fails and causes.get(fails[0].probe) else None
    accepted = EXPECTED_TO_CAUSES.get(row.expected, ()) if row.expected else ()
    if row.kind == "engine" and row.expected is not None:
        verdict = "a catalogued bug: see its row"
    elif row.expected is None:
        verdict = "no bug: passes" if not fails else "no bug: FAILS"
    elif not fails:
        verdict = "invisible: passes every probe"
    elif not accepted:
        verdict = "no probe cause for it"
    elif first is not None and first.name in accepted:
        verdict = "named first"
    elif any(c.name in accepted for found in causes.values() for c in found):
        verdict = "named, not first"
    else:
        verdict = "not named"
    summary = {
        "row": row.label,
        "kind": row.kind,
        "spec": row.spec,
        "expected_cause": row.expected,
        "probes_failed": len(fails),
        "probes_failed_every_seed": sum(v.status == "fail-every-seed" for v in fails),
        "probes": len(battery.verdicts),
        "cause_named_first": None if first is None else first.name,
        "cause_named_first_probe": None if first is None else first.probe,
        "cause_on_first_fail_line": first_line,
        "expected_verdict": verdict,
        "discount_measured": battery.discount(),
        **timing,
    }
    cells = [
        {
            "row": row.label,
            "probe": v.probe,
            "status": v.status,
            "failed_seeds": v.failed_seeds,
            "seeds": v.seeds,
            "causes": ", ".join(c.name for c in causes.get(v.probe, [])),
            "sentence": causes[v.probe][0].sentence() if causes.get(v.probe) else "",
        }
        for v in battery.verdicts
    ]
    return summary, cells


def markdown(summaries: pd.DataFrame, cells: pd.DataFrame) -> str:
    """The bug x probe table and the per-row table, as Markdown."""
    from agents.probes.envs import PROBES

    names = [p.name for p in PROBES]
    lines = ["## Bug x probe", "", "| row | " + " | ".join(names) + " | discount |", "|---" * (len(names) + 2) + "|"]
    for summary in summaries.itertuples():
        mine = cells[cells["row"] == summary.row].set_index("probe")
        shown = []
        for name in names:
            if name not in mine.index or mine.loc[name, "status"] in ("pass", "not-applicable"):
                shown.append("pass" if name in mine.index else "-")
                continue
            cell = mine.loc[name]
            cause = cell["causes"].split(", ")[0] if cell["causes"] else "no named cause"
            shown.append(f"**FAIL {cell['failed_seeds']}/{cell['seeds']}** {cause}")
        discount = "" if pd.isna(summary.discount_measured) else f"{summary.discount_measured:.3f}"
        lines.append(f"| {summary.row} | " + " | ".join(shown) + f" | {discount} |")
    lines += [
        "",
        "## Cause named first",
        "",
        "| row | expected cause | probes failed (every seed) | cause named first (probe) | first FAIL line | "
        "expected | wall s | CPU s | load before / after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def shown(value, empty: str = "-") -> str:  # None comes back from Parquet as NaN
        return empty if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)

    for s in summaries.itertuples():
        first = shown(s.cause_named_first)
        first = first if first == "-" else f"{first} ({s.cause_named_first_probe})"
        lines.append(
            f"| `{s.row}` | {shown(s.expected_cause, 'none')} | {s.probes_failed}/{s.probes} "
            f"({s.probes_failed_every_seed}) | {first} | {shown(s.cause_on_first_fail_line)} | {s.expected_verdict} "
            f"| {s.wall_s:.0f} | {s.cpu_s:.0f} "
            f"| {s.load_before:.1f} / {s.load_after:.1f} |"
        )
    return "\n".join(lines) + "\n"


def write(out: Path, results: pd.DataFrame, timings: dict[str, dict], rows: list[Row]) -> tuple[pd.DataFrame, str]:
    """Read every finished row and write the four files atomically."""
    from agents.results import write_directory_atomically

    summaries, cells = [], []
    for row in rows:
        mine = results[results["row"] == row.label]
        if mine.empty:
            continue
        summary, row_cells = read_row(row, mine, timings[row.label])
        summaries.append(summary)
        cells += row_cells
    summary_table, cell_table = pd.DataFrame(summaries), pd.DataFrame(cells)
    text = markdown(summary_table, cell_table) if summaries else ""

    def fill(staging: Path) -> None:
        results.to_parquet(staging / RESULTS_FILE, index=False)
        summary_table.to_parquet(staging / ROWS_FILE, index=False)
        cell_table.to_parquet(staging / CELLS_FILE, index=False)
        (staging / MARKDOWN_FILE).write_text(text)

    write_directory_atomically(out, fill)
    return summary_table, text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dqn-ablations probe-table", description=__doc__.splitlines()[0])
    parser.add_argument("--examples", default="examples/byo", help="the examples folder (default examples/byo)")
    parser.add_argument("--no-examples", action="store_true", help="leave the examples out")
    parser.add_argument("--engine", action="store_true", help="add the engine's catalogued bugs and bug-free presets")
    parser.add_argument("--only", default=None, help="comma-separated row labels or parts of them (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per probe (default 3)")
    parser.add_argument("--workers", type=int, default=1, help="processes per battery (default 1)")
    parser.add_argument("--out", default="probe-table", help="results folder (default probe-table)")
    parser.add_argument("--reread", action="store_true", help="name the causes again from --out; no training")
    parser.add_argument("--rerun", action="store_true", help="run rows already in --out again")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.seeds < 1:
            raise BadInput(f"--seeds={args.seeds} is invalid: must be >= 1")
        if args.workers < 1:
            raise BadInput(f"--workers={args.workers} is invalid: must be >= 1")
        rows = ([] if args.no_examples else example_rows(Path(args.examples))) + (engine_rows() if args.engine else [])
        if args.only:
            wanted = args.only.split(",")
            rows = [r for r in rows if any(w in r.label for w in wanted)]
        if not rows:
            raise BadInput("no rows to build: give --examples with declared files, or --engine")
    except (BadInput, SyntaxError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    results = pd.read_parquet(out / RESULTS_FILE) if (out / RESULTS_FILE).exists() else pd.DataFrame()
    old = pd.read_parquet(out / ROWS_FILE) if (out / ROWS_FILE).exists() else pd.DataFrame()
    timing_columns = ("wall_s", "cpu_s", "load_before", "load_after", "workers", "notes", "git_commit")
    timings = {r["row"]: {k: r.get(k) for k in timing_columns} for r in old.to_dict("records")}
    # Finished rows stay in the files when a later build runs others (--only).
    known = {
        r["row"]: Row(r["row"], r["kind"], r["spec"], r["expected_cause"], r["kind"] == "example")
        for r in old.to_dict("records")
    }
    known.update({row.label: row for row in rows})
    if args.reread:
        rows = [r for r in known.values() if r.label in timings]
        if not rows:
            print(f"error: --reread found no finished rows in {out}", file=sys.stderr)
            return 2
        print(write(out, results, timings, rows)[1])
        return 0
    from agents.probes.adapters import AgentSpecError, UserCodeError

    seeds = list(range(args.seeds))
    for row in rows:
        if row.label in timings and not args.rerun:
            continue
        print(f"running {row.label} ...", flush=True)
        try:
            found, timing = run_row(row, seeds, args.workers)
        except (UserCodeError, AgentSpecError) as exc:
            print(f"error: {row.label}: {exc}", file=sys.stderr)
            return 2
        kept = results[results["row"] != row.label] if len(results) else results
        results = pd.concat([kept, found], ignore_index=True)
        timings[row.label] = timing
        done = [r for r in known.values() if r.label in timings]
        summaries, _ = write(out, results, timings, done)
        line = summaries[summaries["row"] == row.label].iloc[0]
        print(
            f"  {line['expected_verdict']}: cause named first {line['cause_named_first']}, expected "
            f"{line['expected_cause']}; wall {timing['wall_s']:.0f} s, CPU {timing['cpu_s']:.0f} s, load "
            f"{timing['load_before']:.1f} -> {timing['load_after']:.1f}",
            flush=True,
        )
    print(write(out, results, timings, [r for r in known.values() if r.label in timings])[1])
    return 0
