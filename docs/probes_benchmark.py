"""Wall time of the whole probe battery for a plain PyTorch DQN (tests/probe_dqn.py:train):
every probe, 3 seeds, the battery's own budgets, in 1 and in 2 processes.

    python docs/probes_benchmark.py [--workers 2]

Prints the wall time, the CPU seconds of this process and its workers, and the load average
while it ran (the figure depends on what else the machine is doing; docs/probes.md has it).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.probes.adapters import function_agent  # noqa: E402
from agents.probes.battery import run_battery  # noqa: E402


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--agent", default=str(ROOT / "tests/probe_dqn.py") + ":train")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for workers in args.workers:
        agent = function_agent(args.agent)
        started, cpu = time.perf_counter(), cpu_seconds()
        battery = run_battery(agent, workers=workers)
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        failed = [v.probe for v in battery.verdicts if v.status != "pass"]
        print(
            f"workers {workers}: wall {wall:.1f} s, CPU {cpu:.1f} s, load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} cores; {len(battery.verdicts) - len(failed)} of {len(battery.verdicts)} probes "
            f"passed{'; failed: ' + ', '.join(failed) if failed else ''}",
            flush=True,
        )


if __name__ == "__main__":
    main()
