"""`python -m ablations probe AGENT`: the probe battery on any DQN implementation.

AGENT is `path/to/file.py:function` or `module:function` (the user's `train(env, total_steps,
seed)`), `engine:VARIANT` or `engine:config.toml` (the project's engine) or `sb3` (Stable-
Baselines3's DQN, keyword arguments from --sb3-kwargs). Prints one line per probe (pass / FAIL,
measured against expected Q, on how many seeds, the likely cause and its fix), writes
probes.parquet, causes.parquet, meta.json and probes.html into --out, and exits 0 when every
probe passes, 1 on failures, 2 on bad input (one line, no traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jinja2
import pandas as pd

PROBE_FILE, CAUSE_FILE, META_FILE, HTML_FILE = "probes.parquet", "causes.parquet", "meta.json", "probes.html"


class BadInput(ValueError):
    """A command-line value is invalid; the message names it."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ablations probe", description=__doc__.splitlines()[0])
    parser.add_argument("agent", help="FILE.py:FUNCTION, MODULE:FUNCTION, engine:VARIANT_OR_TOML or sb3")
    parser.add_argument("--gamma", type=float, default=None, help="your discount (default: the returned object's "
                        "gamma attribute, else 0.99)")  # fmt: skip
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--like", default=None, metavar="ENV_ID", help="shape the probes like this gymnasium env")
    shape.add_argument("--obs-size", type=int, default=None, help="observation vector size (default 4, CartPole's)")
    shape.add_argument("--image", default=None, metavar="C,H,W", help="image observations (C, H, W) float32")
    parser.add_argument("--actions", type=int, default=None, help="number of actions (default 2, CartPole's)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per probe (default 3)")
    parser.add_argument("--probes", default=None, help="comma-separated probe names (default: all)")
    parser.add_argument("--old-gym", action="store_true", help="your code uses old gym's API (reset -> obs, "
                        "step -> obs, reward, done, info)")  # fmt: skip
    parser.add_argument("--new-gym", action="store_true", help="never retry your code on old gym's API")
    parser.add_argument("--env-as", choices=("auto", "env", "id"), default="auto",
                        help="pass train() a gymnasium env or its registered id (default: decided from its "
                        "signature, or by trying)")  # fmt: skip
    parser.add_argument("--sb3-kwargs", default=None, metavar="JSON", help="with sb3: DQN keyword arguments")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes training at once (default: one per core; 1 runs in this process)")  # fmt: skip
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every probe's step budget")
    parser.add_argument("--out", default="probe-results", help="results folder (default probe-results)")
    return parser


def make_shape(args: argparse.Namespace):
    from agents.probes.envs import DEFAULT_ACTIONS, DEFAULT_OBS_SHAPE, ProbeShape, shape_like

    if args.like is not None:
        if args.actions is not None:
            raise BadInput("--actions is invalid with --like: the env gives the action count")
        return shape_like(args.like)
    obs_shape = DEFAULT_OBS_SHAPE
    if args.obs_size is not None:
        obs_shape = (args.obs_size,)
    if args.image is not None:
        try:
            obs_shape = tuple(int(part) for part in args.image.split(","))
        except ValueError:
            raise BadInput(f"--image={args.image!r} is invalid: give C,H,W such as 3,84,84") from None
        if len(obs_shape) != 3:
            raise BadInput(f"--image={args.image!r} is invalid: give three sizes C,H,W")
    return ProbeShape(obs_shape, DEFAULT_ACTIONS if args.actions is None else args.actions)


def make_agent(args: argparse.Namespace):
    from agents.probes.adapters import SB3Agent, engine_agent, function_agent

    spec = args.agent
    if args.sb3_kwargs is not None and spec != "sb3":
        raise BadInput("--sb3-kwargs is invalid here: it applies to the agent sb3")
    if spec == "sb3":
        try:
            kwargs = json.loads(args.sb3_kwargs) if args.sb3_kwargs else {}
        except json.JSONDecodeError as exc:
            raise BadInput(f"--sb3-kwargs={args.sb3_kwargs!r} is invalid: not JSON ({exc.msg})") from None
        if not isinstance(kwargs, dict):
            raise BadInput(f"--sb3-kwargs={args.sb3_kwargs!r} is invalid: give a JSON object")
        return SB3Agent(kwargs)
    if spec == "engine" or spec.startswith("engine:"):
        return engine_agent(spec)
    if args.old_gym and args.new_gym:
        raise BadInput("--old-gym and --new-gym are invalid together: choose one")
    api = "old-gym" if args.old_gym else "gymnasium" if args.new_gym else "auto"
    return function_agent(spec, env_mode=args.env_as, api=api)


def check_args(args: argparse.Namespace) -> None:
    from agents.probes.envs import PROBES_BY_NAME

    if args.gamma is not None and not 0.0 <= args.gamma < 1.0:
        raise BadInput(f"--gamma={args.gamma} is invalid: must lie in [0, 1)")
    if args.seeds is not None and args.seeds < 1:
        raise BadInput(f"--seeds={args.seeds} is invalid: must be >= 1")
    if args.workers < 1:
        raise BadInput(f"--workers={args.workers} is invalid: must be >= 1")
    if not args.budget_scale > 0:
        raise BadInput(f"--budget-scale={args.budget_scale} is invalid: must be > 0")
    if args.probes is not None:
        for name in args.probes.split(","):
            if name not in PROBES_BY_NAME:
                known = ", ".join(PROBES_BY_NAME)
                raise BadInput(f"--probes={args.probes!r} is invalid: {name!r} is not one of {known}")


def cpu_seconds() -> float:
    """CPU seconds of this process and its waited-for children (the battery's workers)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def probe_line(verdict, results, causes) -> str:
    """One printed line: status, probe, measured vs expected on the seeds, the likely cause and fix."""
    if verdict.status == "not-applicable":
        return f"skip  {verdict.probe}: {verdict.reason}"
    if verdict.status == "pass":
        worst = max(results, key=lambda r: abs(r.worst_measured - r.worst_expected))
        return (
            f"pass  {verdict.probe}: Q at {worst.worst_state} {worst.worst_measured:.2f}, expected "
            f"{worst.worst_expected:.2f} (worst of {verdict.seeds} seeds)"
        )
    kind = "a bug" if verdict.status == "fail-every-seed" else "fragile: passes on some seeds"
    failing = [r for r in results if not r.passed]
    if causes:
        cause = causes[0]
        return f"FAIL  {verdict.probe} on {verdict.failed_seeds} of {verdict.seeds} seeds ({kind}): {cause.sentence()}"
    first = failing[0]
    return (
        f"FAIL  {verdict.probe} on {verdict.failed_seeds} of {verdict.seeds} seeds ({kind}): Q at {first.worst_state} "
        f"(action {first.worst_action}) reaches {first.worst_measured:.2f}, expected {first.worst_expected:.2f}; "
        "no named cause fits"
    )


def tables(battery, causes) -> tuple[pd.DataFrame, pd.DataFrame]:
    """probes.parquet (one row per probe x seed x state x action) and causes.parquet."""
    rows = []
    verdicts = {v.probe: v for v in battery.verdicts}
    for r in battery.results:
        for i, state in enumerate(r.states):
            for a, (measured, expected) in enumerate(zip(r.measured[i], r.expected[i])):
                rows.append(
                    {
                        "agent": battery.agent,
                        "probe": r.probe,
                        "status": verdicts[r.probe].status,
                        "seed": r.seed,
                        "state": state,
                        "action": a,
                        "measured_q": measured,
                        "expected_q": expected,
                        "seed_passed": r.passed,
                        "gamma": r.gamma,
                        "steps": r.steps,
                        "discount_measured": r.discount,
                        "seconds": r.seconds,
                        "late_epsilon": r.late_epsilon,
                        "measured_q_later": None if r.later is None else r.later[i][a],
                    }
                )
    cause_rows = [c.to_dict() for found in causes.values() for c in found]
    cause_columns = ["name", "probe", "seeds", "failed", "total", "state", "measured", "expected", "detail"]
    cause_columns += ["source", "sentence"]
    return pd.DataFrame(rows), pd.DataFrame(cause_rows, columns=cause_columns)


HTML = jinja2.Template(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Probes: {{ agent }}</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
         color: #1d1d1f; line-height: 1.45; padding: 0 1rem; }
  h2 { font-size: 1.3rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.2rem; }
  .lead { color: #555; }
  table { border-collapse: collapse; width: 100%; font-size: 0.85rem; margin: 0.8rem 0; }
  th, td { border: 1px solid #ddd; padding: 0.3rem 0.45rem; text-align: left; vertical-align: top; }
  th { background: #f4f4f6; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  .verdict { font-weight: 600; padding: 0.05rem 0.4rem; border-radius: 0.3rem; white-space: nowrap; }
  .supported { background: #d8f3dc; color: #1b4332; }
  .refuted { background: #ffd6d6; color: #7a1010; }
  .inconclusive { background: #fff1c1; color: #6b5200; }
  .none { background: #eee; color: #444; }
</style></head><body>
<section id="probes">
<h2>Probe environments: {{ agent }}</h2>
<p class="lead">Each probe is a tiny environment whose exact Q-values are known for any discount; the agent was
trained on each for a fixed budget on {{ seeds|length }} seeds, and Q was read at every state. A value counts as
right within {{ tolerance }}. {{ discount }}.</p>
<table>
<tr><th>probe</th><th>checks</th><th>verdict</th><th>seeds failing</th><th>worst Q (expected)</th>
<th>likely cause and fix</th></tr>
{% for row in rows %}
<tr><td>{{ row.probe }}</td><td>{{ row.checks }}</td>
<td><span class="verdict {{ row.css }}">{{ row.status }}</span></td>
<td class="num">{{ row.failed }} of {{ row.seeds }}</td><td class="num">{{ row.worst }}</td>
<td>{{ row.cause }}</td></tr>
{% endfor %}
</table>
{% if notes %}<ul>{% for note in notes %}<li>{{ note }}</li>{% endfor %}</ul>{% endif %}
</section></body></html>
""",
    autoescape=True,
)
CSS = {"pass": "supported", "fail-every-seed": "refuted", "fail-some-seeds": "inconclusive", "not-applicable": "none"}


def html(battery, causes, discount_text: str, tolerance: float) -> str:
    from agents.probes.envs import PROBES_BY_NAME

    rows = []
    for v in battery.verdicts:
        results = battery.of(v.probe)
        worst = max(results, key=lambda r: abs(r.worst_measured - r.worst_expected), default=None)
        found = causes.get(v.probe, [])
        rows.append(
            {
                "probe": v.probe,
                "checks": PROBES_BY_NAME[v.probe].checks,
                "status": v.status,
                "css": CSS[v.status],
                "failed": v.failed_seeds,
                "seeds": v.seeds,
                "worst": "" if worst is None else f"{worst.worst_measured:.2f} ({worst.worst_expected:.2f})",
                "cause": found[0].sentence() if found else v.reason,
            }
        )
    return HTML.render(
        agent=battery.agent, seeds=battery.seeds, tolerance=tolerance, discount=discount_text.capitalize(),
        rows=rows, notes=battery.notes,
    )  # fmt: skip


def write_results(out: Path, battery, causes, meta: dict, discount_text: str) -> Path:
    from agents.probes.battery import TOLERANCE
    from agents.results import write_directory_atomically

    probes, cause_table = tables(battery, causes)

    def write(staging: Path) -> None:
        probes.to_parquet(staging / PROBE_FILE, index=False)
        cause_table.to_parquet(staging / CAUSE_FILE, index=False)
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        (staging / HTML_FILE).write_text(html(battery, causes, discount_text, TOLERANCE))

    return write_directory_atomically(out, write)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
        from agents.probes.adapters import AgentSpecError, UserCodeError
        from agents.probes.battery import SEEDS, run_battery
        from agents.probes.causes import explain, headline, summary_line
        from agents.results import git_commit, package_versions

        check_args(args)
        shape = make_shape(args)
        agent = make_agent(args)
    except (BadInput, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seeds = list(range(SEEDS if args.seeds is None else args.seeds))
    probes = args.probes.split(",") if args.probes else None
    started = time.time()

    def show(verdict, results) -> None:
        # Progress only: the causes are read across probes once all have run (one ranking for the
        # printed lines and the files).
        status = "pass" if verdict.status == "pass" else verdict.status.replace("-", " ")
        print(f"ran   {verdict.probe}: {status}", file=sys.stderr, flush=True)

    print(f"probe: {agent.name}, observations {shape.obs_shape}, {shape.n_actions} actions, {len(seeds)} seeds",
          flush=True)  # fmt: skip
    cpu_before, load_before = cpu_seconds(), os.getloadavg()
    try:
        battery = run_battery(
            agent, shape, seeds, args.gamma, probes, args.budget_scale, on_probe=show, workers=args.workers
        )
    except (UserCodeError, AgentSpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cpu_time, load_after = cpu_seconds() - cpu_before, os.getloadavg()
    causes = explain(battery)
    for verdict in battery.verdicts:
        print(probe_line(verdict, battery.of(verdict.probe), causes.get(verdict.probe, [])))
    discount_text = summary_line(battery)
    first = headline(battery, causes)
    if first is not None:
        print(f"likely cause: {first.name} ({first.probe}): {first.what}")
    for note in battery.notes:
        print(f"note: {note}")
    print(discount_text)
    meta = {
        "agent": battery.agent,
        "command_line": ["python", "-m", "ablations", "probe", *(sys.argv[1:] if argv is None else argv)],
        "obs_shape": list(shape.obs_shape),
        "n_actions": shape.n_actions,
        "seeds": list(seeds),
        "gamma": args.gamma,
        "budget_scale": args.budget_scale,
        "workers": args.workers,
        "verdicts": [v.to_dict() for v in battery.verdicts],
        "discount_measured": battery.discount(),
        "notes": list(battery.notes),
        "wall_time_s": time.time() - started,
        # CPU seconds of this process and its finished workers over the battery, and the 1-minute
        # load average before and after it (the wall time depends on what else the machine runs).
        "cpu_time_s": cpu_time,
        "load_average": [load_before[0], load_after[0]],
        "cpus": os.cpu_count(),
        "likely_cause": None if first is None else first.name,
        "git_commit": git_commit(),
        "packages": package_versions(),
    }
    written = write_results(Path(args.out), battery, causes, meta, discount_text)
    print(f"results: {written}")
    failed = [v.probe for v in battery.verdicts if v.status.startswith("fail")]
    print(f"probes: {len(failed)} of {len(battery.verdicts)} failed" if failed else "probes: all passed")
    return 1 if failed else 0
