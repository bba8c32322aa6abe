"""`dqn-ablations` (or `python -m ablations`): one command line for every step of the suite.

Each subcommand belongs to the package of its step and keeps its own parser there; this module
only names them and hands the rest of the command line over, importing a command's module when
it runs (so `--help` stays fast). `python -m agents`, `python -m reports`,
`python -m agents.bench` and `python -m ablations.known_causes` are aliases of the same commands.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A subcommand: the module whose `main(argv)` runs it, and whether that main takes the
    subcommand's name first (a module with subcommands of its own) or only the arguments."""

    module: str
    help: str
    named: bool = False


COMMANDS: dict[str, Command] = {
    "train": Command("agents.cli", "train a variant or your config file on a set of seeds", named=True),
    "import": Command("agents.cli", "import an SB3, rl-baselines3-zoo or CleanRL config as ours", named=True),
    "variants": Command("agents.cli", "list the named agent variants", named=True),
    "bugs": Command("agents.cli", "list the bug catalogue", named=True),
    "lint": Command("ablations.diagnosis.command", "check your DQN's config for known problems", named=True),
    "diagnose": Command("ablations.diagnosis.command", "train your DQN and its one-knob ladder", named=True),
    "probe": Command("ablations.probe", "run your own DQN code on the probe environments (exact Q-values)"),
    "probe-table": Command("ablations.probe_table", "the probes' bug x probe and example tables, by running them"),
    "report": Command("reports.cli", "rebuild the HTML report of a results folder"),
    "known-causes": Command("ablations.diagnosis.known_causes", "the diagnosis benchmark on configs with known causes"),
    "bench": Command("agents.textbook.bench", "engine throughput beside the article's loop, in one run"),
    "path-equivalence": Command("ablations.path_equivalence", "the faster paths against the exact one over a long run"),
    "sb3-crosscheck": Command("ablations.sb3_crosscheck", "SB3's own DQN beside ours ([sb3] extra): lockstep"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: dqn-ablations COMMAND [ARGS...]   (or python -m ablations COMMAND ...)",
        "",
        "Shows, with evidence, why a DQN fails to train. Commands:",
        *(f"  {name:<{width}}  {command.help}" for name, command in COMMANDS.items()),
        "",
        "dqn-ablations COMMAND --help describes one command.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    command = COMMANDS.get(name)
    if command is None:
        print(f"dqn-ablations: unknown command {name!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(command.module)
    except ImportError as exc:  # an optional extra the command needs is not installed
        print(f"dqn-ablations {name}: needs {exc.name!r}, which is not installed ({exc})", file=sys.stderr)
        return 2
    return module.main([name, *rest] if command.named else rest)


if __name__ == "__main__":
    sys.exit(main())
