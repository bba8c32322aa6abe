"""Stable-Baselines3's own DQN beside ours, from the same imported rl-zoo config.

    pip install -e ".[sb3]"
    dqn-ablations sb3-crosscheck --env CartPole-v1 --seeds 10 --out sb3-check

Both train every seed on the zoo entry's schedule (agents/importers/formats.py maps it) and are scored
the same way: the late return, the mean greedy return (10 episodes) over the checkpoints of the
last 20% of the run, one checkpoint every eval_period env steps. The RNG streams differ, so the
numbers are not expected to be equal; a significant difference (two-sided Mann-Whitney U) is a
bug to find or a semantic difference to document. Each seed's result is written as it finishes
(JSON), so an interrupted run keeps what it trained; `--table` prints the table from a folder.

Two checks need no training to speak of: `--schedule STEPS` runs both sides for STEPS env steps
and lists every step where they explore, update or sync differently; `--n-step` compares SB3's
NStepReplayBuffer with our n-step windows on the same random transitions; `--updates` runs SB3's
train() and our gradient step from the same weights on the same batches; `--lockstep SEED` trains
SB3's DQN fed our seed's random numbers beside our engine and finds where actions or network bits
first differ (tests/test_sb3_lockstep.py runs it on every zoo entry for a few thousand steps).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import mannwhitneyu

from agents.engine.loop import train
from agents.envprofile import env_profile
from agents.importers.formats import import_source
from agents.seeding import EVAL_SEED_BASE
from reports.analysis import stats
from reports.analysis.metrics import late_checkpoints, late_count

# The zoo's classic-control entries, as checked out beside the package (a source checkout).
ZOO = Path(__file__).resolve().parents[1] / "examples" / "imports" / "rl-zoo-dqn.yml"
EVAL_EPISODES = 10


def late_steps(total: int, period: int) -> list[int]:
    """SB3's checkpoint steps that reports.analysis.metrics.late_checkpoints would pick (known before it trains)."""
    steps = list(range(period, total + 1, period))
    return steps[-late_count(len(steps)) :]


def quiet(model):
    """An SB3 model with a logger that writes nothing (SB3's default makes a folder in /tmp per run)."""
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def sb3_linears(net) -> list[torch.nn.Linear]:
    """The Linear layers of an SB3 QNetwork (q_net or q_net_target), first layer first."""
    return [m for m in net.q_net if isinstance(m, torch.nn.Linear)]


def fixed_start_return(model, env, episodes: int) -> float:
    """The mean greedy return of an SB3 model from the start states our evaluation uses (episode e
    resets with seed EVAL_SEED_BASE + e, agents.engine.measurements.greedy_eval), so both sides are scored
    on the same episodes."""
    total = 0.0
    for e in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED_BASE + e)
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total += float(reward)
            done = terminated or truncated
    return total / episodes


def zoo_entry(env_id: str) -> tuple[dict, dict]:
    """The zoo's entry for env_id, and the DQN(...) keywords SB3 gets from it."""
    import yaml

    entry = yaml.safe_load(ZOO.read_text())[env_id]
    kwargs = {k: v for k, v in entry.items() if k not in ("n_timesteps", "policy")}
    # The zoo writes policy_kwargs as a string, "dict(net_arch=[...])"; our import read it (and
    # refuses anything but net_arch), so SB3 gets the same layers without evaluating the string.
    kwargs["policy_kwargs"] = {"net_arch": list(import_source("rl-zoo", ZOO, env_id).config.hidden_sizes)}
    return entry, kwargs


def sb3_seed(env_id: str, seed: int, steps: int) -> dict:
    """Train SB3's DQN from the zoo entry (rl_zoo3's own reading of policy_kwargs) and score it."""
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    entry, kwargs = zoo_entry(env_id)
    total = int(entry["n_timesteps"]) if steps is None else steps
    wanted = set(late_steps(total, 1_000))
    returns: list[float] = []
    fresh_returns: list[float] = []
    eval_env, fresh_env = gym.make(env_id), gym.make(env_id)

    class LateEval(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps in wanted:
                returns.append(fixed_start_return(self.model, eval_env, EVAL_EPISODES))
                # SB3's own evaluation: fresh start states at every checkpoint (the same models).
                mean, _ = evaluate_policy(self.model, fresh_env, n_eval_episodes=EVAL_EPISODES, deterministic=True)
                fresh_returns.append(float(mean))
            return True

    started = time.perf_counter()
    model = quiet(DQN(entry["policy"], gym.make(env_id), seed=seed, device="cpu", **kwargs))
    model.learn(total_timesteps=total, callback=LateEval())
    wall = time.perf_counter() - started
    return {
        "late_return": float(np.mean(returns)),
        "late_return_fresh_starts": float(np.mean(fresh_returns)),
        "checkpoints": len(returns),
        "wall_s": wall,
    }


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


def sb3_schedule(env_id: str, steps: int) -> dict:
    """What SB3's DQN does when, over a run of `steps` env steps of the zoo entry: the exploration
    rate each action used, the gradient updates after each env step, the env steps that synced."""
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.dqn import dqn as sb3_dqn

    entry, kwargs = zoo_entry(env_id)
    epsilon, updates, syncs = [], {}, set()

    class Traced(DQN):
        def _sample_action(self, learning_starts, action_noise=None, n_envs=1):
            # Below learning_starts SB3 samples the action space: an exploration rate of 1.
            epsilon.append(1.0 if self.num_timesteps < learning_starts else float(self.exploration_rate))
            return super()._sample_action(learning_starts, action_noise, n_envs)

        def train(self, gradient_steps, batch_size=100):
            updates[self.num_timesteps] = gradient_steps
            super().train(gradient_steps, batch_size)

    copy = sb3_dqn.polyak_update

    def traced_copy(params, target_params, tau):
        syncs.add(model.num_timesteps)
        copy(params, target_params, tau)

    sb3_dqn.polyak_update = traced_copy
    try:
        model = quiet(Traced(entry["policy"], gym.make(env_id), seed=0, device="cpu", **kwargs))
        model.learn(total_timesteps=steps)
    finally:
        sb3_dqn.polyak_update = copy
    # SB3 finishes the rollout it is in (a documented difference); compare the steps both take.
    updates = {t: n for t, n in updates.items() if t <= steps}
    return {"epsilon": epsilon[:steps], "updates": updates, "syncs": sorted(t for t in syncs if t <= steps)}


def our_schedule(env_id: str, steps: int) -> dict:
    """The same three things for our engine on the import of the entry."""
    from collections import Counter

    from agents.engine.targets import TargetNetwork

    config = import_source("rl-zoo", ZOO, env_id).config.replace(total_env_steps=steps, eval_episodes=0)
    updates, syncs = Counter(), set()
    at_env_step = TargetNetwork.at_env_step

    def traced_sync(self, online, clock, step, updates_done, unit):
        if self._due(unit, clock).any():
            syncs.add(step)
        at_env_step(self, online, clock, step, updates_done, unit)

    TargetNetwork.at_env_step = traced_sync
    try:
        train(config, [0], on_update=lambda step, *_: updates.update([step]))
    finally:
        TargetNetwork.at_env_step = at_env_step
    return {"epsilon": [config.epsilon(t) for t in range(steps)], "updates": dict(updates), "syncs": sorted(syncs)}


def compare_schedules(env_id: str, steps: int) -> list[str]:
    """Where SB3's and our schedules differ (empty when they agree step for step)."""
    theirs, mine = sb3_schedule(env_id, steps), our_schedule(env_id, steps)
    found = []
    gaps = [(t, a, b) for t, (a, b) in enumerate(zip(theirs["epsilon"], mine["epsilon"])) if abs(a - b) > 1e-6]
    if gaps:
        found.append(f"epsilon differs at {len(gaps)} steps, first {gaps[:3]} (step, SB3, ours)")
    for what in ("updates", "syncs"):
        if theirs[what] != mine[what]:
            a, b = theirs[what], mine[what]
            if isinstance(a, dict):
                a, b = sorted(a.items()), sorted(b.items())
            first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            found.append(f"{what} differ: SB3 {a[first:first + 3]} vs ours {b[first:first + 3]} (from entry {first})")
    return found


def compare_n_step_windows(buffers: int = 200, n: int = 4, gamma: float = 0.97, capacity: int = 50) -> str:
    """SB3's NStepReplayBuffer against our n-step windows (agents.textbook.reference.n_step_windows) on the
    same random transitions (ends and time limits, ring wrap-around) and the same indices."""
    import gymnasium as gym
    from stable_baselines3.common.buffers import NStepReplayBuffer

    from agents.config import AgentConfig
    from agents.textbook.reference import TextbookBuffer, n_step_windows

    rng = np.random.default_rng(0)
    obs_space, config = gym.spaces.Box(-10, 10, (3,), np.float32), AgentConfig(n_step=n, gamma=gamma)
    samples = moved = other_done = 0
    worst_return = worst_discount = 0.0
    for _ in range(buffers):
        theirs = NStepReplayBuffer(
            capacity, obs_space, gym.spaces.Discrete(2), device="cpu", handle_timeout_termination=True,
            n_steps=n, gamma=gamma,
        )  # fmt: skip
        ours = TextbookBuffer(capacity, 3)
        for _ in range(int(rng.integers(5, 3 * capacity))):
            obs, next_obs = rng.normal(size=(2, 3)).astype(np.float32)
            reward, end = np.float32(rng.normal()), rng.random()
            terminated, truncated = end < 0.08, 0.08 <= end < 0.14
            info = [{"TimeLimit.truncated": bool(truncated)}]
            theirs.add(obs[None], next_obs[None], np.array([[1]]), np.array([reward]), np.array([end < 0.14]), info)
            ours.add(obs, 1, reward, next_obs, terminated, truncated)
        idx = rng.integers(0, ours.size, size=64)
        batch = theirs._get_samples(idx)
        windows = n_step_windows(config, idx, ours.reward, ours.terminated, ours.truncated, ours.position)
        last, returns, discounts = windows
        samples += len(idx)
        moved += int((batch.next_observations.numpy() != ours.next_obs[last]).any(1).sum())
        other_done += int((batch.dones.numpy()[:, 0] != ours.terminated[last]).sum())
        worst_return = max(worst_return, float(np.abs(batch.rewards.numpy()[:, 0] - returns).max()))
        worst_discount = max(worst_discount, float(np.abs(batch.discounts.numpy()[:, 0] - discounts).max()))
    return (
        f"{samples} samples from {buffers} buffers (n={n}): windows ending elsewhere {moved}, other done flags "
        f"{other_done}; largest return difference {worst_return:.2g}, discount difference {worst_discount:.2g}"
    )


def compare_updates(env_id: str, updates: int = 400, sync_every: int = 50) -> str:
    """SB3's DQN.train and our engine's gradient_step from the same start weights on the same
    random batches (ends, time limits), hard syncs on both sides every `sync_every` updates:
    the largest weight difference after each update."""
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    from agents.engine.bughooks import BugHooks
    from agents.engine.family import SeedKnobs
    from agents.engine.networks import BatchedAdam, MLPParams
    from agents.engine.update import gradient_step

    config = import_source("rl-zoo", ZOO, env_id).config
    env = gym.make(env_id)
    model = DQN("MlpPolicy", env, learning_rate=config.learning_rate, gamma=config.gamma, seed=0, device="cpu",
                policy_kwargs={"net_arch": list(config.hidden_sizes)})  # fmt: skip
    quiet(model)

    def as_ours(net) -> MLPParams:  # one seed: the seed axis of length 1 in front
        return MLPParams([m.weight.detach().clone()[None] for m in sb3_linears(net)],
                         [m.bias.detach().clone()[None] for m in sb3_linears(net)])  # fmt: skip

    online, target = as_ours(model.q_net), as_ours(model.q_net_target)
    knobs = SeedKnobs.of([config], torch.device("cpu"))
    bugs, optimizer = BugHooks(knobs), BatchedAdam(online, knobs.learning_rate)
    rng, size, dim = np.random.default_rng(1), config.batch_size, env.observation_space.shape[0]
    worst, clipped = 0.0, 0
    for update in range(1, updates + 1):
        # Every other batch at a large scale, so the gradient clip is exercised too.
        obs = (rng.normal(size=(size, dim)) * (3 if update % 2 else 300)).astype(np.float32)
        next_obs = obs + rng.normal(size=(size, dim)).astype(np.float32) * 0.1
        action, ends = rng.integers(0, env.action_space.n, size=size), rng.random(size)
        terminated, truncated = ends < 0.05, (ends >= 0.05) & (ends < 0.1)
        reward = np.where(terminated, 0.0, -1.0).astype(np.float32)
        t = {k: torch.from_numpy(v) for k, v in dict(obs=obs, action=action, reward=reward, next_obs=next_obs,
                                                      terminated=terminated, truncated=truncated).items()}  # fmt: skip
        # SB3's buffer hands train() dones with the time limits already taken out.
        samples = ReplayBufferSamples(t["obs"], t["action"].view(-1, 1), t["next_obs"],
                                      t["terminated"].float().view(-1, 1), t["reward"].view(-1, 1))  # fmt: skip
        model.replay_buffer.sample = lambda *_, batch=samples, **__: batch
        model.train(gradient_steps=1, batch_size=size)
        result = gradient_step(knobs, bugs, online, target, optimizer, {k: v[None] for k, v in t.items()})
        clipped += int(float(result.grad_norm[0]) > config.max_grad_norm)
        if update % sync_every == 0:
            model.q_net_target.load_state_dict(model.q_net.state_dict())
            target.copy_(online)
        for layer, weight, bias in zip(sb3_linears(model.q_net), online.weights, online.biases):
            gaps = (layer.weight.detach() - weight[0]).abs().max(), (layer.bias.detach() - bias[0]).abs().max()
            worst = max(worst, *map(float, gaps))
    return (
        f"{env_id}: {updates} updates on the same batches ({clipped} clipped at max_grad_norm), "
        f"largest weight difference SB3 vs ours {worst:g}"
    )


def weights_digest(weights: list[torch.Tensor], biases: list[torch.Tensor]) -> bytes:
    """A digest of one network's exact bits (layer by layer, weight then bias), so two networks
    compare equal only when every float is the same."""
    digest = hashlib.blake2b(digest_size=16)
    for tensor in (t for pair in zip(weights, biases) for t in pair):
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.digest()


def lockstep(env_id: str, seed: int, steps: int | None) -> dict:
    """SB3's DQN fed our seed's random numbers, beside our engine: the same start weights (our
    init stream), the same exploration draws (SB3's rand() < exploration_rate is our first
    uniform, its action_space.sample() floor(second uniform x actions)), the same replay indices
    (its randint(0, upper_bound) is floor(uniform x upper_bound)) and the same first env reset
    seed (later resets continue the env's generator on both sides). Each substitution keeps the
    draw's distribution, so what stays different with them in place is a semantic difference.
    Compared: the action of every env step, both networks' exact bits after every update, and
    the greedy return of our last network, each side scoring it its own way."""
    config = import_source("rl-zoo", ZOO, env_id).config
    if steps is not None:
        config = config.replace(total_env_steps=steps)
    # One checkpoint, at the end: our evaluation of the final network on the fixed start states.
    config = config.replace(eval_period=config.total_env_steps, eval_episodes=EVAL_EPISODES)
    ours = ours_traced(config, seed)
    # SB3 finishes the rollout it is in (more env steps and updates than ours when the budget is
    # not a multiple of train_freq): compare what both did, and score SB3's network as it was
    # after as many updates as ours made.
    theirs = sb3_fed(env_id, config, seed, score_after=len(ours["digests"]))
    return {
        "env_id": env_id,
        "seed": seed,
        "env_steps": len(ours["actions"]),
        "updates": {"sb3": len(theirs["digests"]), "ours": len(ours["digests"])},
        "first_different_action": first_difference(theirs["actions"], ours["actions"]),
        "first_different_network": first_difference(theirs["digests"], ours["digests"]),
        "final_return": {"sb3": theirs["final_return"], "ours": ours["final_return"]},
        "wall_s": {"sb3": theirs["wall_s"], "ours": ours["wall_s"]},
    }


def digest_pair(online: tuple[list, list], target: tuple[list, list]) -> tuple[bytes, bytes]:
    """The exact bits of the online and the target network, each (weights, biases) of one seed."""
    return weights_digest(*online), weights_digest(*target)


def ours_traced(config, seed: int) -> dict:
    """Our engine on one seed: its actions, the networks' digests after every update, the greedy
    return of the final network on our fixed start states."""
    import agents.engine.loop

    digests: list[tuple[bytes, bytes]] = []

    def one_seed(params):
        return [w[0] for w in params.weights], [b[0] for b in params.biases]

    def on_update(step, updates, online, target):
        digests.append(digest_pair(one_seed(online), one_seed(target)))

    started = time.perf_counter()
    record = agents.engine.loop.train(config, [seed], trace=True, on_update=on_update)
    return {
        "actions": [int(a) for a in record.trace_actions[:, 0]],
        "digests": digests,
        "final_return": float(record.checkpoints["eval_return"][-1]),
        "wall_s": time.perf_counter() - started,
    }


def sb3_fed(env_id: str, config, seed: int, score_after: int) -> dict:
    """SB3's DQN on the zoo entry with our seed's random numbers in place of its own (see
    lockstep): its actions, the networks' digests after every update, and SB3's own greedy
    prediction scored on our fixed start states with the network it had after `score_after`
    updates."""
    import gymnasium as gym
    from stable_baselines3 import DQN

    from agents.engine.networks import init_params, layer_sizes
    from agents.engine.replay import UniformBlocks, uniform_indices
    from agents.seeding import seed_streams

    entry, kwargs = zoo_entry(env_id)
    streams = seed_streams(seed)
    explore = UniformBlocks([streams.explore], width=2)
    replay = UniformBlocks([streams.replay], width=config.batch_size)
    actions: list[int] = []
    digests: list[tuple[bytes, bytes]] = []

    class Fed(DQN):
        def _sample_action(self, learning_starts, action_noise=None, n_envs=1):
            # SB3's warm-up (random below learning_starts) then predict()'s epsilon-greedy.
            u = explore.next()[0]
            epsilon = 1.0 if self.num_timesteps < learning_starts else self.exploration_rate
            if u[0] < epsilon:
                action = int(u[1] * self.action_space.n)
            else:
                action = int(self.policy.predict(self._last_obs, deterministic=True)[0][0])
            actions.append(action)
            return np.array([action]), np.array([action])

    model = quiet(Fed(entry["policy"], gym.make(env_id), device="cpu", **kwargs))
    sizes = layer_sizes(model.observation_space.shape[0], config.hidden_sizes, int(model.action_space.n))
    init = init_params([streams.init], sizes, torch.device("cpu"))
    layers = {name: sb3_linears(getattr(model, name)) for name in ("q_net", "q_net_target")}
    with torch.no_grad():
        for net in layers.values():
            for layer, weight, bias in zip(net, init.weights, init.biases):
                layer.weight.copy_(weight[0])
                layer.bias.copy_(bias[0])
    model.env.seed(streams.env_reset_seed)
    # SB3's first action is greedy under learning_starts = 0 (its exploration rate starts at 0
    # and is set after the first step); ours explores at the schedule's start. The one documented
    # difference, taken out so the rest can be compared.
    model.exploration_rate = model.exploration_schedule(1.0)
    buffer = model.replay_buffer

    def fed_sample(batch_size, env=None):
        upper_bound = buffer.buffer_size if buffer.full else buffer.pos
        return buffer._get_samples(uniform_indices(replay.next()[0], upper_bound), env=env)

    buffer.sample = fed_sample

    def params(name: str) -> tuple[list, list]:
        return [m.weight for m in layers[name]], [m.bias for m in layers[name]]

    scored = {k: v.clone() for k, v in model.q_net.state_dict().items()}
    optimizer_step = model.policy.optimizer.step

    def traced_step(*args, **kw):
        result = optimizer_step(*args, **kw)
        digests.append(digest_pair(params("q_net"), params("q_net_target")))
        if len(digests) == score_after:
            scored.update({k: v.clone() for k, v in model.q_net.state_dict().items()})
        return result

    model.policy.optimizer.step = traced_step
    started = time.perf_counter()
    model.learn(total_timesteps=config.total_env_steps)
    wall = time.perf_counter() - started
    model.q_net.load_state_dict(scored)
    return {
        "actions": actions,
        "digests": digests,
        "final_return": fixed_start_return(model, gym.make(env_id), EVAL_EPISODES),
        "wall_s": wall,
    }


def first_difference(theirs: list, mine: list) -> int | None:
    """The first index of `mine` where `theirs` differs or has ended (None when every one agrees)."""
    return next((i for i, value in enumerate(mine) if i >= len(theirs) or theirs[i] != value), None)


def describe_lockstep(result: dict) -> str:
    header = (
        f"{result['env_id']} seed {result['seed']}, {result['env_steps']} env steps "
        f"(SB3 {result['wall_s']['sb3']:.0f} s, ours {result['wall_s']['ours']:.0f} s): "
    )
    action, network = result["first_different_action"], result["first_different_network"]
    scored = "final greedy return (our {n} eval starts) SB3 {sb3:g}, ours {ours:g}".format(
        n=EVAL_EPISODES, **result["final_return"]
    )
    if action is None and network is None:
        return header + (
            "identical actions at every step and bit-identical online and target networks after every one of "
            f"{result['updates']['ours']} updates; {scored}"
        )
    return header + (
        f"first different action at env step {action}, first different network after update {network} "
        f"({result['updates']['sb3']} SB3 updates, {result['updates']['ours']} ours); {scored}"
    )


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
    parser = argparse.ArgumentParser(prog="dqn-ablations sb3-crosscheck", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1", help="a classic-control entry of examples/imports")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--steps", type=int, help="shorter runs than the zoo's n_timesteps (a smoke check)")
    parser.add_argument("--only", choices=("sb3", "ours"), help="train one side only")
    parser.add_argument("--out", default="sb3-crosscheck")
    parser.add_argument("--table", action="store_true", help="print the table from --out and stop")
    parser.add_argument("--schedule", type=int, metavar="STEPS", help="compare when each side explores, "
                        "updates and syncs over a run of STEPS env steps (seed 0), and stop")
    parser.add_argument("--n-step", action="store_true", help="compare SB3's n-step buffer with ours and stop")
    parser.add_argument("--lockstep", type=int, metavar="SEED", help="SB3 fed our seed's random numbers beside "
                        "our engine (--steps or the zoo's budget): where actions or networks first differ, and stop")
    parser.add_argument("--updates", action="store_true", help="compare SB3's train() with our update on the "
                        "same batches and stop")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.n_step:
        print(compare_n_step_windows())
        return 0
    if args.lockstep is not None:
        torch.set_num_threads(1)
        print(describe_lockstep(lockstep(args.env, args.lockstep, args.steps)))
        return 0
    if args.updates:
        torch.set_num_threads(1)
        print(compare_updates(args.env))
        return 0
    if args.schedule:
        torch.set_num_threads(1)
        differences = compare_schedules(args.env, args.schedule)
        print("\n".join(differences) or f"{args.env}: SB3 and ours explore, update and sync alike "
              f"at every one of {args.schedule} env steps")
        return 1 if differences else 0
    if args.table:
        print(table(out))
        return 0
    torch.set_num_threads(1)
    env_dir = out / args.env
    env_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
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
