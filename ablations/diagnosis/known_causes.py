"""`dqn-ablations known-causes [DIR]`: the diagnosis benchmark on configs with a known cause.

Each config in examples/known-causes/ fails for one stated reason (its first comment line).
This runs `diagnose` on each (quick profile by default, no repair path unless --rounds), and
writes a table of what the first screen names first: the cause named first (reports/diagnosis/cause.py)
and whether it is the stated one (the file's '# Cause fields:' line), the first lint finding, the
first symptom, the best change that settled as helping, and the session's wall time. It is a
benchmark, not a test: the table is the evidence of whether the diagnosis names the cause.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from reports.diagnosis.cause import diagnosis_causes
from reports.diagnosis.record import Diagnosis
from reports.render.html import write_text_atomically
from reports.results import ReportError, load_results

KNOWN_CAUSES = Path(__file__).resolve().parents[2] / "examples" / "known-causes"


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


def first_screen(results_dir: Path, stated: set[str]) -> dict:
    """What a diagnosis' first screen names first, read from its results folder, and whether the
    cause named first is the stated one (shares a field with `stated`, the fields that fix it)."""
    diagnosis = Diagnosis.from_results(load_results(results_dir))
    if diagnosis is None:
        raise ReportError(f"{results_dir}: the session recorded no diagnosis")
    base, helps = diagnosis.base, diagnosis.helping()
    causes = diagnosis_causes(diagnosis)
    return {
        "named_first": f"{causes[0].field} ({causes[0].kind})" if causes else "",
        "names_the_cause": bool(causes) and bool(causes[0].fields & stated),
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dqn-ablations known-causes", description=__doc__.splitlines()[0])
    parser.add_argument(
        "configs", nargs="*", type=Path, help="config files (default: every file in examples/known-causes/)"
    )
    parser.add_argument("--out", default="known-causes", help="folder for the diagnoses and the table")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--rounds", default="0", help="repair rounds per diagnosis (default 0)")
    parser.add_argument("--cache", default=".ablation-cache")
    parser.add_argument("--table-only", action="store_true",
                        help="train nothing: the table from the diagnoses already in --out")  # fmt: skip
    args = parser.parse_args(argv)
    paths = args.configs or sorted(KNOWN_CAUSES.glob("*.toml"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"error: configs={missing} is invalid: no such config file", file=sys.stderr)
        return 2
    out = Path(args.out)
    rows = []
    for path in paths:
        folder = out / path.stem
        row = {"config": path.stem, "cause": stated_cause(path)}
        if args.table_only:
            error = None if (folder / "tests.parquet").is_file() else f"no diagnosis in {folder}"
        else:
            started = time.perf_counter()
            command = [sys.executable, "-m", "ablations", "diagnose", str(path), "--profile", args.profile,
                       "--out", str(folder), "--cache", args.cache, "--rounds", args.rounds]  # fmt: skip
            run = subprocess.run(command, capture_output=True, text=True)
            row["wall_s"] = round(time.perf_counter() - started, 1)
            last_line = (run.stderr.strip().splitlines() or [f"exit {run.returncode}"])[-1]
            error = last_line if run.returncode != 0 else None
        if error is not None:
            row["error"] = error
        else:
            row.update(first_screen(folder, stated_fields(path)))
        rows.append(row)
        print(json.dumps(row), flush=True)
    frame = pd.DataFrame(rows)
    write_text_atomically(out / "known-causes.json", frame.to_json(orient="records", indent=2))
    write_text_atomically(out / "known-causes.md", markdown_table(frame))
    print(f"table: {(out / 'known-causes.md').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
