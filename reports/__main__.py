"""python -m reports RESULTS_DIR [-o report.html]: tables, figures and the HTML report."""

import argparse
import sys

from reports.aggregate import ReportError
from reports.html import build_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    parser.add_argument("results_dir", help="an ablation results folder (runs.parquet, tests.parquet, meta.json)")
    parser.add_argument("-o", "--output", help="the HTML file to write (default RESULTS_DIR/report.html)")
    args = parser.parse_args(argv)
    try:
        path = build_report(args.results_dir, args.output)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
