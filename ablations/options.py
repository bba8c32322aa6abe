"""The ablation suite's command-line options and profiles: light (pytest only), because the
plugin that declares them is loaded in every pytest session of an environment with the package."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from agents.config import ENGINE_PATHS


@dataclass(frozen=True)
class Profile:
    """A named size of an ablation run: seeds per variant x env steps per seed."""

    name: str
    seeds: int
    env_steps: int


PROFILES = {
    "smoke": Profile("smoke", 3, 10_000),  # CI: a few minutes on 2 cores; most claims inconclusive
    # diagnose's default: in a diagnosis the seeds are the fewest that can settle a strong effect
    # in each family of changes (ablations/diagnosis/plan.py), doubled on demand once.
    "quick": Profile("quick", 8, 10_000),
    "standard": Profile("standard", 20, 50_000),  # the main job
    "paper": Profile("paper", 100, 100_000),  # tight intervals
}
DEFAULT_PROFILE = "smoke"
EXECUTORS = ("local", "ray")
# A diagnosis' budget per profile (what each affords, and its caveat): ablations/diagnosis/plan.py.


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("ablations", "DQN ablation suite")
    add_probe_options(parser)
    group.addoption(
        "--ablation-profile",
        choices=sorted(PROFILES),
        default=DEFAULT_PROFILE,
        help="run size: smoke (3 seeds x 10k steps), quick (8 x 10k; a diagnosis: seeds that can settle, "
        "doubled on demand, steps up to what 3 minutes on 2 cores afford), standard (20 x 50k), "
        "paper (100 x 100k). Default smoke.",
    )
    group.addoption("--ablation-seeds", type=int, default=None, help="seeds per variant (overrides the profile)")
    group.addoption("--ablation-steps", type=int, default=None, help="env steps per seed (overrides the profile)")
    group.addoption("--ablation-env", default="CartPole-v1", help="gymnasium env id (default CartPole-v1)")
    group.addoption(
        "--ablation-config",
        default=None,
        metavar="TOML",
        help="diagnose your DQN: a config file (see examples/); trains it and the one-knob ladder around it "
        "instead of the article's variants. The profile sets the seeds, the file the env and the steps "
        "(smoke caps them at 10,000; quick at what its first screen affords)",
    )
    group.addoption(
        "--ablation-plan",
        default=None,
        metavar="JSON",
        help="with --ablation-config: the diagnosis plan `python -m ablations diagnose` wrote (its budget, "
        "seeds, stages and families: ablations/diagnosis/plan.py); default: built here, untriaged",
    )
    group.addoption(
        "--ablation-stage",
        type=int,
        default=2,
        choices=(0, 1, 2),
        help="with --ablation-config: train the plan through this stage (0: the base only, 1: the triage "
        "rungs, 2: the whole ladder; default 2)",
    )
    group.addoption("--ablation-out", default="ablation-results", help="results folder (default ablation-results)")
    group.addoption("--ablation-cache", default=".ablation-cache", help="trained-run cache (default .ablation-cache)")
    group.addoption("--ablation-rerun", action="store_true", help="retrain every variant instead of using the cache")
    group.addoption("--ablation-no-report", action="store_true", help="do not write the HTML report at the end")
    group.addoption(
        "--ablation-no-families",
        action="store_true",
        help="train each variant on its own instead of whole variant families on one seed axis "
        "(the results are the same bit for bit; for timing comparisons)",
    )
    group.addoption(
        "--ablation-executor",
        choices=EXECUTORS,
        default="local",
        help="where runs train: local (each xdist worker trains its share; the default) or ray (the "
        "session's runs become Ray tasks on a cluster; needs pip install 'dqn-ablations[ray]')",
    )
    group.addoption(
        "--ablation-ray-address",
        default=None,
        metavar="ADDRESS",
        help="with --ablation-executor=ray: the cluster to use (HOST:PORT, ray://HOST:PORT or auto); "
        "default: start a local Ray instance",
    )
    group.addoption(
        "--ablation-max-batch",
        type=int,
        default=None,
        metavar="N",
        help="at most N agents (seeds over a family's variants) per training batch: a batch writes its "
        "cache entries when it ends, so a smaller one loses less when a long session is cut short "
        "(default: each worker's share of a family in one batch; a seed block is never split; on Ray "
        "each task's entries are stored as it returns)",
    )
    group.addoption(
        "--ablation-engine-path",
        choices=ENGINE_PATHS,
        default="exact",
        help="the engine path runs train on: exact (default; bit-identical to the textbook DQN), or fast, "
        "compiled or fused (faster; equal to exact within float tolerance, in distribution over a "
        "standard run as docs/speed.md measures). Part of the cache key",
    )
    group.addoption(
        "--ablation-max-seeds",
        type=int,
        default=None,
        help="seeds on demand: claims still inconclusive get more seeds (doubling) up to N, under a "
        "group-sequential design that keeps the family's error rate at alpha",
    )
    group.addoption(
        "--ablation-no-futility",
        action="store_true",
        help="with --ablation-max-seeds: no futility stop; every claim still open gets every look, so "
        "each inconclusive claim's interval is at N seeds (costs seeds, changes no verdict's error rate)",
    )


def add_probe_options(parser: pytest.Parser) -> None:
    """The probe battery on your own DQN (ablations/test_probes.py, -m probes)."""
    group = parser.getgroup("probes", "DQN probe battery on your own code")
    group.addoption(
        "--agent",
        dest="probe_agent",
        default=None,
        metavar="FILE.py:FUNCTION",
        help="probe your DQN: train(env, total_steps, seed) as FILE.py:FUNCTION or MODULE:FUNCTION (also "
        "engine:VARIANT, sb3); runs the probe tests only (or override the probe_agent fixture in conftest.py)",
    )
    group.addoption("--probe-like", default=None, metavar="ENV_ID", help="shape the probes like this env")
    group.addoption("--probe-gamma", type=float, default=None, help="your discount (default: the returned "
                    "object's gamma, else 0.99)")  # fmt: skip
    group.addoption("--probe-seeds", type=int, default=None, help="seeds per probe (default 3)")
    group.addoption("--probe-old-gym", action="store_true", help="your code uses old gym's API")
