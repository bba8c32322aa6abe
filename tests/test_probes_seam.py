"""The seam to the user's code and the probe command: error lines that point at their code,
env or id, old gym's API found by trying, Q read from what train() returns, exit codes, files.

The users here are oracles (they return the closed-form Q without training), so the tests are
fast and their verdicts known; training agents are in tests/test_probes_mapping.py."""

from __future__ import annotations

import json

import markupsafe
import numpy as np
import pandas as pd
import pytest

from ablations.probe import main
from agents.probes import PROBES_BY_NAME, ProbeShape
from agents.probes.adapters import AgentSpecError, UserCodeError, function_agent, read_q
from agents.probes.battery import run_battery, run_probe

USER = """\
import gymnasium as gym
import numpy as np
import torch

from agents.probes import expected_q


def lookup(probe, q):
    codes = np.array(probe.codes)

    def q_fn(obs):
        obs = np.asarray(obs).reshape(len(obs), -1)
        return q[np.abs(obs[:, :1] - codes[None]).argmin(1)]

    return q_fn


def oracle(env, rule=None):
    probe, n = env.unwrapped.probe, env.action_space.n
    q = probe.alternatives(0.99, n).get(rule) if rule else None
    return lookup(probe, expected_q(probe, 0.99, n) if q is None else q)


def train(env, total_steps, seed):
    return oracle(env)


def train_unmasked(env, total_steps, seed):
    return oracle(env, "unmasked")


def train_raises(env, total_steps, seed):
    batch = np.zeros((2, 3))
    raise ValueError(f"bad shape {batch.shape}")


def train_returns_none(env, total_steps, seed):
    return None


def train_wrong_shape(env, total_steps, seed):
    return lambda obs: np.zeros((len(obs), 3))


def train_module(env, total_steps, seed):
    net = torch.nn.Linear(int(np.prod(env.observation_space.shape)), env.action_space.n)
    net.gamma = 0.9
    return net


def train_cnn(env, total_steps, seed):
    channels, n = env.observation_space.shape[0], env.action_space.n
    return torch.nn.Sequential(torch.nn.Conv2d(channels, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(n))


def train_id(env_id: str, total_steps, seed):
    return oracle(gym.make(env_id))


def train_makes(env, total_steps, seed):
    return oracle(gym.make(env))


def train_slow(env, total_steps, seed):
    # DelayedReward's two far states reach their values only after 7,000 steps.
    probe, n = env.unwrapped.probe, env.action_space.n
    q = expected_q(probe, 0.99, n)
    if probe.name == "DelayedReward":
        q[:2] *= min(1.0, total_steps / 7000)
    return lookup(probe, q)


def train_random(env, total_steps, seed):
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    for _ in range(total_steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            env.reset()
    return oracle(env)


def train_old(env, total_steps, seed):
    obs = env.reset()
    obs, reward, done, info = env.step(0)
    return oracle(env)
"""

RAISE_LINE = next(i for i, line in enumerate(USER.splitlines(), 1) if "raise ValueError" in line)


@pytest.fixture
def user_file(tmp_path, monkeypatch):
    path = tmp_path / "user_dqn.py"
    path.write_text(USER)
    monkeypatch.chdir(tmp_path)
    return path


def agent(name: str, **kwargs):
    return function_agent(f"user_dqn.py:{name}", **kwargs)


def probe(name: str):
    return PROBES_BY_NAME[name]


def test_an_oracle_passes_every_probe_and_the_measured_discount_is_its_own(user_file):
    battery = run_battery(agent("train"))
    assert battery.passed
    assert battery.discount() == pytest.approx(0.99, abs=1e-9)


def test_the_users_error_is_shown_as_theirs_with_their_line(user_file):
    with pytest.raises(UserCodeError) as error:
        run_probe(agent("train_raises", api="gymnasium"), probe("ConstantReward"), ProbeShape(), [0])
    assert str(error.value) == f"your train() raised ValueError: bad shape (2, 3) at user_dqn.py:{RAISE_LINE}"


def test_a_return_value_without_q_is_one_line_naming_it(user_file):
    with pytest.raises(UserCodeError, match=r"^your train\(\) returned None, which Q-values cannot be read from"):
        run_probe(agent("train_returns_none"), probe("ConstantReward"), ProbeShape(), [0])
    with pytest.raises(UserCodeError, match=r"gave Q-values of shape \(1, 3\) for 1 observations; expected \(1, 2\)"):
        run_probe(agent("train_wrong_shape"), probe("ConstantReward"), ProbeShape(), [0])
    with pytest.raises(UserCodeError, match="returned a list"):
        read_q([1, 2])


def test_q_is_read_from_a_module_and_its_gamma_is_the_one_judged(user_file):
    (result,) = run_probe(agent("train_module"), probe("TwoStep"), ProbeShape(), [0])
    assert result.gamma == 0.9 and result.expected[0][0] == pytest.approx(0.9)
    (result,) = run_probe(agent("train_module"), probe("TwoStep"), ProbeShape(), [0], gamma=0.5)
    assert result.gamma == 0.5


def test_code_that_calls_gym_make_gets_the_id_by_its_signature_or_by_trying(user_file):
    by_signature = agent("train_id")
    assert by_signature.env_mode == "id"
    assert all(r.passed for r in run_probe(by_signature, probe("TwoStep"), ProbeShape((6,), 3), [0, 1]))
    by_trying = agent("train_makes", api="gymnasium")
    assert by_trying.env_mode == "auto"
    assert all(r.passed for r in run_probe(by_trying, probe("TwoStep"), ProbeShape(), [0, 1]))
    assert by_trying.env_mode == "id" and by_trying.notes == ["your train() calls gym.make itself: it is given env ids"]


def test_old_gym_code_runs_through_the_shim_chosen_or_found(user_file):
    found = agent("train_old")
    assert all(r.passed for r in run_probe(found, probe("TerminateOrTruncate"), ProbeShape(), [0, 1]))
    assert found.api == "old-gym" and "old gym" in found.notes[0]
    chosen = agent("train_old", api="old-gym")
    assert all(r.passed for r in run_probe(chosen, probe("TerminateOrTruncate"), ProbeShape(), [0]))
    with pytest.raises(UserCodeError, match="your train\\(\\) raised ValueError: too many values to unpack"):
        run_probe(agent("train_old", api="gymnasium"), probe("ConstantReward"), ProbeShape(), [0])


def test_bad_agent_specs_are_one_line_errors(user_file, tmp_path, monkeypatch):
    with pytest.raises(AgentSpecError, match="agent='nope.py:train' is invalid: no file nope.py"):
        function_agent("nope.py:train")
    with pytest.raises(AgentSpecError, match="user_dqn.py has no function 'nope'"):
        function_agent("user_dqn.py:nope")
    with pytest.raises(AgentSpecError, match="give FILE.py:FUNCTION or MODULE:FUNCTION"):
        function_agent("user_dqn.py")
    with pytest.raises(AgentSpecError, match="no module named 'no_such_module'"):
        function_agent("no_such_module:train")
    (tmp_path / "broken.py").write_text("import numpy\n\nraise RuntimeError('at import')\n")
    with pytest.raises(AgentSpecError, match=r"importing broken.py raised RuntimeError: at import at broken.py:3"):
        function_agent("broken.py:train")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert function_agent("user_dqn:train").fn.__name__ == "train"


def test_the_command_exits_0_when_every_probe_passes_and_writes_its_files(user_file, tmp_path, capsys):
    assert main(["user_dqn.py:train", "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\npass  ") == 10 and "probes: all passed" in printed
    table = pd.read_parquet(tmp_path / "out" / "probes.parquet")
    assert set(table["probe"]) == set(PROBES_BY_NAME) and table["seed"].nunique() == 3
    assert np.allclose(table["measured_q"], table["expected_q"])
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["discount_measured"] == pytest.approx(0.99) and len(meta["verdicts"]) == 10
    assert "TerminateOrTruncate" in (tmp_path / "out" / "probes.html").read_text()


def test_the_command_exits_1_on_failures_and_names_the_cause(user_file, tmp_path, capsys):
    assert main(["user_dqn.py:train_unmasked", "--out", str(tmp_path / "out"), "--workers", "1"]) == 1
    lines = capsys.readouterr().out.splitlines()
    last_step = next(line for line in lines if line.startswith("FAIL  LastStep"))
    assert "on 3 of 3 seeds (a bug)" in last_step
    assert "Q at s1 reaches 100.00 on 3 of 3 seeds, expected 1.00: the target bootstraps through terminal" in last_step
    assert "multiply the bootstrap term by (1 - terminated)" in last_step
    causes = pd.read_parquet(tmp_path / "out" / "causes.parquet")
    assert causes.query("probe == 'LastStep'")["name"].iloc[0] == "unmasked"
    # One ranking: each FAIL line prints the first cause causes.parquet (and the HTML) give its probe.
    fails = [line for line in lines if line.startswith("FAIL  ")]
    assert fails and all(causes[causes["probe"] == line.split()[1]]["sentence"].iloc[0] in line for line in fails)
    html = (tmp_path / "out" / "probes.html").read_text()
    firsts = [causes[causes["probe"] == line.split()[1]]["sentence"].iloc[0] for line in fails]
    assert all(str(markupsafe.escape(sentence)) in html for sentence in firsts)
    assert "likely cause: unmasked" in "\n".join(lines)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope.py:train"], "error: agent='nope.py:train' is invalid: no file nope.py"),
        (["user_dqn.py:train", "--image", "3,84"], "error: --image='3,84' is invalid: give three sizes C,H,W"),
        (["user_dqn.py:train", "--gamma", "1.5"], "error: --gamma=1.5 is invalid: must lie in [0, 1)"),
        (["user_dqn.py:train", "--probes", "Nope"], "error: --probes='Nope' is invalid: 'Nope' is not one of"),
        (["sb3", "--sb3-kwargs", "{bad"], "error: --sb3-kwargs='{bad' is invalid: not JSON"),
        (["user_dqn.py:train", "--like", "NoSuchEnv-v9"], "error: like='NoSuchEnv-v9' is invalid: cannot make"),
        (["user_dqn.py:train_raises", "--new-gym"], "error: probe ConstantReward: your train() raised ValueError"),
        (["engine:no-such-variant"], "error: agent='engine:no-such-variant' is invalid"),
    ],
)
def test_the_command_exits_2_on_bad_input_with_one_line(user_file, tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / "out"), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err


def test_the_probes_take_the_shape_of_a_like_env(user_file, tmp_path, capsys):
    assert (
        main(
            [
                *["user_dqn.py:train", "--like", "Acrobot-v1", "--probes", "ActionReward", "--out", str(tmp_path)],
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert "observations (6,), 3 actions" in capsys.readouterr().out
    table = pd.read_parquet(tmp_path / "probes.parquet")
    assert sorted(table["action"].unique()) == [0, 1, 2]


def test_image_probes_reach_a_cnn_and_an_oracle_passes_them(user_file, tmp_path):
    shape = ProbeShape((2, 5, 5), 3)
    (result,) = run_probe(agent("train_cnn"), probe("ObservationReward"), shape, [0])
    assert np.shape(result.measured) == (2, 3)
    assert main(["user_dqn.py:train", "--image", "2,5,5", "--workers", "1", "--out", str(tmp_path)]) == 0


def test_two_user_files_with_the_same_name_do_not_shadow_each_other(tmp_path):
    from agents.probes.adapters import load_function

    for folder, value in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "train.py").write_text(f"def train(env, total_steps, seed):\n    return {value}\n")
    first, _ = load_function(f"{tmp_path / 'a' / 'train.py'}:train")
    second, _ = load_function(f"{tmp_path / 'b' / 'train.py'}:train")
    assert (first(None, 0, 0), second(None, 0, 0)) == (1, 2)
    assert first.__module__ != second.__module__


def test_the_probe_envs_record_the_actions_the_users_code_takes(user_file):
    from agents.probes.battery import late_epsilon

    runs = function_agent("user_dqn.py:train_random").train(probe("ActionReward"), ProbeShape(), 400, [0])
    assert len(runs[0].actions) == 400 and {a for _, a in runs[0].actions} == {0, 1}
    assert late_epsilon(probe("ActionReward"), runs[0].actions, 2) > 0.5  # uniform actions: epsilon about 1


def test_a_lagging_chain_is_trained_again_on_twice_the_budget_and_read_as_still_moving(user_file):
    from agents.probes.causes import explain

    battery = run_battery(agent("train_slow"), probes=["DelayedReward", "TwoStep"], seeds=[0, 1])
    delayed = battery.of("DelayedReward")
    assert all(r.later is not None and r.later[0][0] == pytest.approx(0.99**5) for r in delayed)
    assert all(r.later is None for r in battery.of("TwoStep"))  # passes: not followed up
    assert explain(battery)["DelayedReward"][0].name == "too_slow"
    (alone,) = run_probe(agent("train_slow"), probe("DelayedReward"), ProbeShape(), [0])  # the pytest path too
    assert alone.later is not None
