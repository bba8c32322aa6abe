"""`dqn-ablations known-causes [CONFIGS]`: the diagnosis benchmark on configs with a known cause.

Each config in examples/known-causes/ and examples/reported/ fails for one stated reason (its first
comment line) that changing the fields of its '# Cause fields:' line fixes; an empty line means no
config knob fixes it, and then the right answer is a lint finding that says so (NO_KNOB_RULES).
This runs `diagnose` on each (quick profile by default, no repair path unless --rounds), streams its
output to time the first settled cause, and writes a table of what it names first: the cause named
first (reports/diagnosis/cause.py), whether it is the stated one, whether it settled, the budget
trained (and whether it is a prefix), the first lint finding and symptom, the best settled change,
the stages run, and the wall time to the first settled cause and to the end. It is a benchmark,
not a test: the table is the evidence of whether the diagnosis names the cause.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

from ablations.diagnosis.plan import PLAN_FILE, read_plan
from ablations.diagnosis.staged import SETTLED_KINDS
from reports.diagnosis.cause import diagnosis_causes
from reports.diagnosis.record import Diagnosis
from reports.render.html import write_text_atomically

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KNOWN_CAUSES = EXAMPLES / "known-causes"
REPORTED = EXAMPLES / "reported"
# Lint rules whose finding says that no knob of this suite fixes the failure (the honest answer
# for a config whose '# Cause fields:' line is empty).
NO_KNOB_RULES = ("sparse-exploration",)


def stated_cause(path: Path) -> str:
    """The cause a known-cause file states in its first line ('# Known cause: ...')."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    return first.removeprefix("# Known cause:").strip()


def stated_fields(path: Path) -> set[str]:
    """The config fields whose change fixes a known-cause file's defect (its '# Cause fields:' line)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# Cause fields:"):
            return {f.strip() for f in line.removeprefix("# Cause fields:").split(",") if f.strip()}
    return set()


def names_stated(cause, stated: set[str]) -> bool:
    """Whether a named cause is the stated one: it shares a field with `stated` (the fields that fix
    it), or, when no field does, it is a finding that says no knob of this suite fixes it."""
    if not stated:
        return cause.finding is not None and cause.finding.rule in NO_KNOB_RULES
    return bool(cause.fields & stated)


def first_screen(results_dir: Path, stated: set[str]) -> dict:
    """What a diagnosis' first screen names first, read from its results folder, and whether the
    cause named first is the stated one (names_stated)."""
    diagnosis = Diagnosis.load(results_dir)
    base, helps = diagnosis.base, diagnosis.helping()
    causes = diagnosis_causes(diagnosis)
    return {
        "named_first": f"{causes[0].field} ({causes[0].kind})" if causes else "",
        "names_the_cause": bool(causes) and names_stated(causes[0], stated),
        "settled": bool(causes) and causes[0].kind in SETTLED_KINDS,
        "trains": base.trains,
        "lint_first": f"{base.lint[0].field} ({base.lint[0].rule})" if base.lint else "",
        "symptom_first": base.symptoms[0].name if base.symptoms else "",
        "best_settled_change": helps[0].rung if helps else "",
        "settled_changes": len(helps),
        "best_unsettled": "" if helps or not diagnosis.rungs else diagnosis.rungs[0].rung,
    }


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub table of the frame (pandas' to_markdown needs tabulate, not a dependency)."""
    cells = frame.fillna("").astype(str)
    lines = ["| " + " | ".join(cells.columns) + " |", "|" + " --- |" * len(cells.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def timed_diagnosis(command: list[str], log: Path, timeout: float | None = None) -> dict:
    """Run a diagnose command, its output streamed into `log`; the wall time to its first
    'settled:' line (staged.run_staged prints it when a cause settles) and to the end, its
        CPU-seconds, and the 1-minute load average at its start and end (the cores are shared)."""
    started, load = time.perf_counter(), os.getloadavg()[0]
    # CPU-seconds of the diagnosis and every process under it (each waits for its children).
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    first_settled = None
    lines: list[str] = []
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as sink:
        # A session of its own, so a timeout stops the diagnosis and every process under it.
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        timer = None
        if timeout is not None:
            timer = threading.Timer(timeout, os.killpg, (process.pid, signal.SIGTERM))
            timer.start()
        for line in process.stdout:
            sink.write(line)
            sink.flush()
            lines.append(line.rstrip())
            if first_settled is None and line.startswith("settled: "):
                first_settled = time.perf_counter() - started
        process.wait()
        stopped = timer is not None and not timer.is_alive() and process.returncode < 0
        if timer is not None:
            timer.cancel()
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    errors = [line for line in lines if line.startswith("error: ")]
    return {
        "wall_first_settled_s": None if first_settled is None else round(first_settled, 1),
        "wall_s": round(time.perf_counter() - started, 1),
        # A stopped diagnosis' processes are never waited for, so their CPU time is not known.
        "cpu_s": None if stopped else round(used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime, 1),
        "load_1m": f"{load:.1f}-{os.getloadavg()[0]:.1f}",  # the machine's load at the start and the end
        "exit": process.returncode,
        # Stopped at the timeout: the results are the last finished stage's (each is written atomically).
        "stopped_at_s": timeout if stopped else None,
        "error": None if stopped or process.returncode == 0 else (errors or [f"exit {process.returncode}"])[-1],
    }


def plan_facts(results_dir: Path) -> dict:
    """The budget and stages a diagnosis' plan recorded (its plan.json), where it wrote one."""
    path = results_dir / PLAN_FILE
    if not path.is_file():
        return {}
    plan = read_plan(path)
    return {
        "own_steps": plan.own_steps,
        "steps": plan.steps,
        "prefix": plan.shortened,
        "seeds": plan.seeds,
        "triage": "(not triaged)" if plan.triage is None else ", ".join(plan.stage_rungs(1)),
        "symptoms": ", ".join(plan.symptoms),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dqn-ablations known-causes", description=__doc__.splitlines()[0])
    parser.add_argument(
        "configs",
        nargs="*",
        type=Path,
        help="config files (default: every file in examples/reported/ and examples/known-causes/)",
    )
    parser.add_argument("--out", default="known-causes", help="folder for the diagnoses and the table")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--rounds", default="0", help="repair rounds per diagnosis (default 0)")
    parser.add_argument("--cache", default=".ablation-cache")
    parser.add_argument("--thorough", action="store_true", help="diagnose --thorough (the whole ladder every time)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="stop a diagnosis after this many seconds (its last stage's results stand)",
    )
    parser.add_argument("--table-only", action="store_true",
                        help="train nothing: the table from the diagnoses already in --out")  # fmt: skip
    args = parser.parse_args(argv)
    paths = args.configs or [*sorted(REPORTED.glob("*.toml")), *sorted(KNOWN_CAUSES.glob("*.toml"))]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"error: configs={missing} is invalid: no such config file", file=sys.stderr)
        return 2
    out = Path(args.out)
    rows = []
    for path in paths:
        folder = out / path.stem
        row = {"set": path.parent.name, "config": path.stem, "cause": stated_cause(path)}
        timing_file = folder / "timing.json"
        if args.table_only:
            error = None if (folder / "tests.parquet").is_file() else f"no diagnosis in {folder}"
            if timing_file.is_file():
                row.update(json.loads(timing_file.read_text(encoding="utf-8")))
        else:
            command = [sys.executable, "-m", "ablations", "diagnose", str(path), "--profile", args.profile,
                       "--out", str(folder), "--cache", args.cache, "--rounds", args.rounds]  # fmt: skip
            if args.thorough:
                command.append("--thorough")
            timing = timed_diagnosis(command, out / f"{path.stem}.log", args.timeout)
            error = timing.pop("error")
            write_text_atomically(timing_file, json.dumps(timing))
            row.update(timing)
        if error is not None:
            row["error"] = error
        if (folder / "tests.parquet").is_file():
            row.update(first_screen(folder, stated_fields(path)))
        row.update(plan_facts(folder))
        rows.append(row)
        print(json.dumps(row), flush=True)
    frame = pd.DataFrame(rows)
    write_text_atomically(out / "known-causes.json", frame.to_json(orient="records", indent=2))
    write_text_atomically(out / "known-causes.md", markdown_table(frame))
    print(f"table: {(out / 'known-causes.md').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
