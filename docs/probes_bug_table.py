"""The bug x probe table of docs/probes.md: every catalogued bug and article quirk injected into
the engine, every bug-free preset, and the plain PyTorch DQN's bugs (tests/probe_dqn.py), each
through the probe battery; prints the Markdown table and writes the figures as JSON.

    python docs/probes_bug_table.py [--out probe-bug-table.json] [--only engine|plain]

Long (every row is a full battery on 3 seeds): run it by hand, not in the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.catalogue.bugs import CATALOGUE  # noqa: E402
from agents.catalogue.presets import VARIANTS  # noqa: E402
from agents.config import BUG_FIELDS  # noqa: E402
from agents.probes.adapters import EngineAgent, function_agent  # noqa: E402
from agents.probes.battery import BatteryResult, ProbeResult, classify, run_battery  # noqa: E402
from agents.probes.causes import explain  # noqa: E402
from agents.probes.envs import PROBES, ProbeShape  # noqa: E402

# The base every engine bug is injected into: bug-free (masked terminals, bootstrap on
# truncation), replay and a hard target synced every 100 updates. A bug that needs another base
# gets the nearest bug-free one.
BASE = VARIANTS["cell-m1-d0-r1-t1"].config
BASES = {
    "target-gradient": VARIANTS["cell-m1-d0-r1-t0"].config,  # bites only without a target network
    "epsilon-at-end": BASE.replace(epsilon_start=1.0, epsilon_end=0.05, epsilon_decay_fraction=0.3),
}
PLAIN_BUGS = (
    "unmasked", "time_limit_terminal", "broadcast", "drop_reset", "target_is_online", "greedy_gather",
    "wrong_gamma", "no_bootstrap", "gamma_twice", "no_learning",
)  # fmt: skip


def engine_rows():
    for bug in CATALOGUE:
        yield f"engine bug {bug.name}", EngineAgent(bug.inject(BASES.get(bug.name, BASE)), bug.name)
    for name, variant in VARIANTS.items():
        config = variant.config
        bugs = any(getattr(config, f) for f in BUG_FIELDS)
        if config.terminal_masking and config.bootstrap_on_truncation and not bugs:
            yield f"bug-free preset {name}", EngineAgent(config, name)


def plain_rows():
    yield "plain DQN (correct)", function_agent(str(ROOT / "tests/probe_dqn.py") + ":train")
    for bug in PLAIN_BUGS:
        yield f"plain DQN {bug}", function_agent(str(ROOT / "tests/probe_dqn.py") + f":train_{bug}")


def cells_of(battery: BatteryResult) -> dict:
    causes = explain(battery)
    cells = {}
    for verdict in battery.verdicts:
        found = causes.get(verdict.probe, [])
        cells[verdict.probe] = {
            "status": verdict.status,
            "failed": verdict.failed_seeds,
            "seeds": verdict.seeds,
            "causes": [c.name for c in found],
            "sentence": found[0].sentence() if found else None,
        }
    return cells


def reread(row: dict) -> BatteryResult:
    """A row's battery from its stored per-seed results (to name causes again without training)."""
    results = tuple(ProbeResult(**{**r, "states": tuple(r["states"]), "measured": tuple(map(tuple, r["measured"])),
                                   "expected": tuple(map(tuple, r["expected"]))}) for r in row["results"])  # fmt: skip
    names = list(dict.fromkeys(r.probe for r in results))
    verdicts = tuple(classify(name, [r for r in results if r.probe == name]) for name in names)
    return BatteryResult(row["row"], ProbeShape(), tuple(sorted({r.seed for r in results})), results, verdicts, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="probe-bug-table.json")
    parser.add_argument("--only", choices=("engine", "plain"), default=None)
    parser.add_argument("--workers", type=int, default=1, help="processes for the plain DQN's batteries")
    parser.add_argument("--reread", action="store_true", help="name the causes again from --out; no training")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.reread:
        rows = json.loads(Path(args.out).read_text())
        for row in rows:
            row["cells"] = cells_of(reread(row))
        Path(args.out).write_text(json.dumps(rows, indent=1))
        print(markdown(rows))
        return
    rows = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else []
    done = {row["row"] for row in rows}
    sources = {"engine": engine_rows, "plain": plain_rows}
    for kind, make in sources.items():
        if args.only not in (None, kind):
            continue
        for label, agent in make():
            if label in done:
                continue
            started = time.perf_counter()
            battery = run_battery(agent, workers=1 if kind == "engine" else args.workers)
            seconds = time.perf_counter() - started
            row = {"row": label, "cells": cells_of(battery), "discount": battery.discount(), "seconds": seconds,
                   "results": [r.to_dict() for r in battery.results]}  # fmt: skip
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "results"}), flush=True)
            Path(args.out).write_text(json.dumps(rows, indent=1))
    print(markdown(rows))


def markdown(rows) -> str:
    names = [p.name for p in PROBES]
    lines = ["| row | " + " | ".join(names) + " | discount |", "|---" * (len(names) + 2) + "|"]
    for row in rows:
        cells = []
        for name in names:
            cell = row["cells"].get(name)
            if cell is None or cell["status"] == "pass":
                cells.append("pass")
            else:
                cause = cell["causes"][0] if cell["causes"] else "no named cause"
                cells.append(f"**FAIL {cell['failed']}/{cell['seeds']}** {cause}")
        discount = "" if row["discount"] is None else f"{row['discount']:.3f}"
        lines.append(f"| {row['row']} | " + " | ".join(cells) + f" | {discount} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
