"""python -m reports RESULTS_DIR [-o report.html]: tables, figures and the HTML report.
python -m reports DIR DIR ... -o across.html: the claims x environments page (one folder per env)."""

import argparse
import sys

from reports.render.html import build_report
from reports.results import ReportError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dqn-ablations report", description=__doc__)
    parser.add_argument(
        "results_dirs", nargs="+", metavar="RESULTS_DIR", help="ablation results folder(s); several: one per env"
    )
    parser.add_argument(
        "-o", "--output", help="the HTML file to write (default RESULTS_DIR/report.html; claims-by-env.html)"
    )
    args = parser.parse_args(argv)
    try:
        if len(args.results_dirs) == 1:
            path = build_report(args.results_dirs[0], args.output)
        else:
            from reports.render.across import write_across_report

            path = write_across_report(args.results_dirs, args.output or "claims-by-env.html")
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
