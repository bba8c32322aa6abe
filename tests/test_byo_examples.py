"""The bring-your-own-DQN examples run as user code: each trains briefly and hands back Q.

examples/byo/ holds DQNs written as users write them (the article's three examples on the old
gym API, SB3, a CleanRL-style script, a correct plain PyTorch DQN) and examples/byo/buggy/
twelve copies of one small DQN with one bug each from a public thread. These tests only check
that each loads through the probes' seam (`file.py:function`), trains a few hundred steps on
CartPole-v1 and returns something Q-values of the right shape are read from; what the probes
say about each is in docs/byo-cases.md (long runs are not tests).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.probes.adapters import load_function, q_values, read_q
from agents.probes.oldgym import OldGymEnv

ROOT = Path(__file__).resolve().parent.parent
BYO = ROOT / "examples" / "byo"
BUGGY = BYO / "buggy"
CONTROL = BUGGY / "control_no_bug.py"
BUGGY_FILES = sorted(p for p in BUGGY.glob("*.py") if p != CONTROL)
STEPS = 300  # past every example's learning start (100 steps): a few hundred updates run
OBS = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)  # a CartPole-shaped batch

# (file, function, API): the article's examples are written against old gym's API.
EXAMPLES = [
    ("article_example_1.py", "train", "old-gym"),
    ("article_example_2.py", "train", "old-gym"),
    ("article_example_3.py", "train", "old-gym"),
    ("article_example_3.py", "train_as_published", "old-gym"),
    ("sb3_dqn.py", "train", "gymnasium"),
    ("cleanrl_style_dqn.py", "train", "gymnasium"),
    ("correct_dqn.py", "train", "gymnasium"),
]
ALL = [(str(BYO / f), fn, api) for f, fn, api in EXAMPLES] + [(str(p), "train", "gymnasium") for p in [CONTROL]]
ALL += [(str(p), "train", "gymnasium") for p in BUGGY_FILES]


def cartpole(api: str):
    env = gym.make("CartPole-v1")
    return OldGymEnv(env) if api == "old-gym" else env


def train_q(path: str, fn: str, api: str, seed: int = 0, env=None) -> np.ndarray:
    train, _ = load_function(f"{path}:{fn}")
    returned = train(env if env is not None else cartpole(api), STEPS, seed)
    return q_values(read_q(returned), OBS, n_actions=2)


@pytest.mark.parametrize(("path", "fn", "api"), ALL, ids=[f"{Path(p).stem}:{fn}" for p, fn, _ in ALL])
def test_trains_and_returns_q(path, fn, api):
    q = train_q(path, fn, api)
    assert q.shape == (len(OBS), 2)
    assert np.isfinite(q).all()


@pytest.mark.parametrize("name", ["article_example_1.py", "article_example_3.py"])
def test_old_api_examples_need_the_shim(name):
    """Written against old gym: gymnasium's reset (obs, info) breaks them, the shim does not."""
    with pytest.raises(Exception):  # noqa: B017 - whatever the user's code trips over first
        train_q(str(BYO / name), "train", "gymnasium")


@pytest.mark.parametrize("name", ["correct_dqn.py", "cleanrl_style_dqn.py", "article_example_3.py"])
def test_env_id_works_like_an_env(name):
    """Code that calls gym.make itself is given the env's id: both forms train the same network."""
    api = "old-gym" if name.startswith("article") else "gymnasium"
    env_id = "CartPole-v1"
    if api == "old-gym":  # old-gym code makes its env by id: give it an id whose env speaks old gym
        env_id = "byo-test/OldCartPole-v0"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=lambda: OldGymEnv(gym.make("CartPole-v1")), disable_env_checker=True)
    by_id = train_q(str(BYO / name), "train", api, env=env_id)
    by_env = train_q(str(BYO / name), "train", api)
    np.testing.assert_array_equal(by_id, by_env)


SEEDED = ["correct_dqn.py", "article_example_1.py", "cleanrl_style_dqn.py", "buggy/control_no_bug.py"]


@pytest.mark.parametrize("name", SEEDED)
def test_per_seed_streams(name):
    """One seed, one result; another seed, another; torch's global generator is left as it was."""
    api = "old-gym" if name.startswith("article") else "gymnasium"
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    first = train_q(str(BYO / name), "train", api, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    again = train_q(str(BYO / name), "train", api, seed=3)
    other = train_q(str(BYO / name), "train", api, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def _code(path: Path) -> list[str]:
    """The file's code from its constants on (the header docstring and imports differ by design)."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("EXPECTED_CAUSE"))
    return [line for line in lines[start + 2 :] if line.strip()]


@pytest.mark.parametrize("path", BUGGY_FILES, ids=[p.stem for p in BUGGY_FILES])
def test_buggy_file_is_the_control_with_one_marked_bug(path):
    """Each buggy file states its cause and thread, and differs from the control in one marked spot."""
    source = path.read_text()
    cause = re.search(r'^EXPECTED_CAUSE = "([a-z_]+)"$', source, re.M)
    url = re.search(r'^THREAD_URL = "(https://github\.com/[^"]+/(issues|pull)/\d+)"$', source, re.M)
    assert cause and url, "EXPECTED_CAUSE and THREAD_URL must be set"
    assert url.group(1) in source.split('"""')[1], "the thread's URL belongs in the header too"
    changed = [d[2:] for d in difflib.ndiff(_code(CONTROL), _code(path)) if d.startswith("+ ")]
    assert 1 <= len(changed) <= 3, changed
    assert any("# BUG" in line for line in changed), changed


def test_docs_table_lists_every_buggy_file():
    table = (ROOT / "docs" / "byo-cases.md").read_text()
    missing = [p.name for p in BUGGY_FILES if f"buggy/{p.name}" not in table]
    assert not missing
