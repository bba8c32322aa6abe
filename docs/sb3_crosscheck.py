"""Stable-Baselines3's own DQN beside ours, from the same imported rl-zoo config.

    pip install -e ".[sb3]"
    python docs/sb3_crosscheck.py --env CartPole-v1 --seeds 10 --out sb3-check

Both train every seed on the zoo entry's schedule (agents/importers.py maps it) and are scored
the same way: the late return, the mean greedy return (10 episodes) over the checkpoints of the
last 20% of the run, one checkpoint every eval_period env steps. The RNG streams differ, so the
numbers are not expected to be equal; a significant difference (two-sided Mann-Whitney U) is a
bug to find or a semantic difference to document. Each seed's result is written as it finishes
(JSON), so an interrupted run keeps what it trained; `--table` prints the table from a folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import mannwhitneyu

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.engine import train  # noqa: E402
from agents.envprofile import env_profile  # noqa: E402
from agents.importers import import_source  # noqa: E402
from reports import stats  # noqa: E402
from reports.metrics import late_checkpoints, late_count  # noqa: E402

ZOO = ROOT / "examples" / "imports" / "rl-zoo-dqn.yml"
EVAL_EPISODES = 10


def late_steps(total: int, period: int) -> list[int]:
    """SB3's checkpoint steps that reports.metrics.late_checkpoints would pick (known before it trains)."""
    steps = list(range(period, total + 1, period))
    return steps[-late_count(len(steps)) :]


def sb3_seed(env_id: str, seed: int, steps: int) -> dict:
    """Train SB3's DQN from the zoo entry (rl_zoo3's own reading of policy_kwargs) and score it."""
    import gymnasium as gym
    import yaml
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    entry = yaml.safe_load(ZOO.read_text())[env_id]
    kwargs = {k: v for k, v in entry.items() if k not in ("n_timesteps", "policy")}
    # The zoo writes policy_kwargs as a string, "dict(net_arch=[...])"; our import read it (and
    # refuses anything but net_arch), so SB3 gets the same layers without evaluating the string.
    kwargs["policy_kwargs"] = {"net_arch": list(import_source("rl-zoo", ZOO, env_id).config.hidden_sizes)}
    total = int(entry["n_timesteps"]) if steps is None else steps
    wanted = set(late_steps(total, 1_000))
    returns: list[float] = []
    eval_env = gym.make(env_id)

    class LateEval(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps in wanted:
                mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=EVAL_EPISODES, deterministic=True)
                returns.append(float(mean))
            return True

    started = time.perf_counter()
    model = DQN(entry["policy"], gym.make(env_id), seed=seed, device="cpu", **kwargs)
    model.learn(total_timesteps=total, callback=LateEval())
    wall = time.perf_counter() - started
    return {"late_return": float(np.mean(returns)), "checkpoints": len(returns), "wall_s": wall}


def ours(env_id: str, seeds: list[int], steps: int | None) -> list[dict]:
    """Train our import of the same entry over the seeds (one batch) and score each seed."""
    config = import_source("rl-zoo", ZOO, env_id).config
    config = config.replace(eval_period=1_000, eval_episodes=EVAL_EPISODES)
    if steps is not None:
        config = config.replace(total_env_steps=steps)
    started = time.perf_counter()
    record = train(config, seeds)
    wall = time.perf_counter() - started
    import pandas as pd

    frame = pd.DataFrame(record.checkpoints)
    by_seed = late_checkpoints(frame).groupby("seed")["eval_return"].mean()
    return [{"seed": int(s), "late_return": float(by_seed[s]), "wall_s": wall / len(seeds)} for s in seeds]


def table(out: Path) -> str:
    """The comparison per env from the folder's JSON files: IQMs with 95% bootstrap intervals and
    a two-sided Mann-Whitney U test."""
    lines = [
        "| env | seeds (SB3 / ours) | SB3 late-return IQM [95% CI] | ours IQM [95% CI] | Mann-Whitney p (two-sided) "
        "| seeds converged (SB3 / ours) | wall s per seed (SB3 / ours) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for env_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        runs = {who: [json.loads(f.read_text()) for f in env_dir.glob(f"{who}-*.json")] for who in ("sb3", "ours")}
        if not runs["sb3"] or not runs["ours"]:
            continue
        values = {who: np.array([r["late_return"] for r in rs]) for who, rs in runs.items()}
        threshold = env_profile(env_dir.name).success_threshold
        ci = {who: stats.bootstrap_ci(v) for who, v in values.items()}
        p = mannwhitneyu(values["sb3"], values["ours"], alternative="two-sided").pvalue
        walls = {who: np.mean([r["wall_s"] for r in rs]) for who, rs in runs.items()}
        lines.append(
            f"| {env_dir.name} | {len(values['sb3'])} / {len(values['ours'])} "
            f"| {ci['sb3'].estimate:.1f} [{ci['sb3'].low:.1f}, {ci['sb3'].high:.1f}] "
            f"| {ci['ours'].estimate:.1f} [{ci['ours'].low:.1f}, {ci['ours'].high:.1f}] | {p:.3g} "
            f"| {(values['sb3'] >= threshold).sum()} / {(values['ours'] >= threshold).sum()} (>= {threshold:g}) "
            f"| {walls['sb3']:.0f} / {walls['ours']:.0f} |"
        )
    return "\n".join(lines)


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1", help="a classic-control entry of examples/imports")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, help="shorter runs than the zoo's n_timesteps (a smoke check)")
    parser.add_argument("--only", choices=("sb3", "ours"), help="train one side only")
    parser.add_argument("--out", default="sb3-crosscheck")
    parser.add_argument("--table", action="store_true", help="print the table from --out and stop")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.table:
        print(table(out))
        return 0
    torch.set_num_threads(1)
    env_dir = out / args.env
    env_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    if args.only != "sb3":
        for row in ours(args.env, seeds, args.steps):
            write_json(env_dir / f"ours-{row['seed']}.json", row)
        print(f"ours: {args.env} x{len(seeds)} done", flush=True)
    if args.only != "ours":
        for seed in seeds:
            if not (env_dir / f"sb3-{seed}.json").exists():
                write_json(env_dir / f"sb3-{seed}.json", {"seed": seed, **sb3_seed(args.env, seed, args.steps)})
                print(f"sb3: {args.env} seed {seed} done", flush=True)
    print(table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
