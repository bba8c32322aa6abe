"""Importers: each source's reference config maps field by field to ours, unsupported keys are
one-line errors naming the key, and the TOML reads back to the same config."""

from pathlib import Path

import pytest

from agents.cli import main
from agents.configfile import load_config_file
from agents.importers.formats import SourceError, from_cleanrl, from_sb3, import_source, imported_toml

IMPORTS = Path(__file__).resolve().parents[1] / "examples" / "imports"
ZOO = IMPORTS / "rl-zoo-dqn.yml"


def test_the_zoo_cartpole_entry_runs_on_sb3s_schedule():
    c = import_source("rl-zoo", ZOO, "CartPole-v1").config
    assert (c.env_id, c.total_env_steps, c.learning_rate, c.batch_size, c.replay_capacity) == (
        "CartPole-v1", 50_000, 2.3e-3, 64, 100_000
    )  # fmt: skip
    # Trains when num_timesteps > 1000 and a multiple of 256: 128 updates each time.
    assert (c.learning_starts, c.env_steps_per_update, c.gradient_steps) == (1001, 256, 128)
    assert c.step_clock == "steps_taken"
    assert [s for s in range(1, 2_000) if c.trains_at(s)] == [1024, 1280, 1536, 1792]
    assert (c.target_network, c.target_sync_period, c.target_sync_unit) == ("hard", 10, "env_steps")
    assert (c.loss, c.max_grad_norm, c.hidden_sizes) == ("huber", 10.0, (256, 256))
    assert (c.epsilon_start, c.epsilon_end, c.epsilon_decay_fraction, c.random_warmup) == (1.0, 0.04, 0.16, True)
    assert c.epsilon(999) == 1.0 and c.epsilon(8_000) == 0.04  # warm-up, then the end of the decay


@pytest.mark.parametrize("env_id", ["Acrobot-v1", "LunarLander-v3"])
def test_gradient_steps_minus_one_is_one_update_per_env_step_collected(env_id):
    c = import_source("rl-zoo", ZOO, env_id).config
    assert (c.env_steps_per_update, c.gradient_steps, c.learning_starts) == (4, 4, 1)
    assert c.gradient_updates == 100_000  # 4 updates every 4 steps from the first


def test_every_zoo_entry_imports(tmp_path):
    for env_id in ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3"):
        imported = import_source("rl-zoo", ZOO, env_id)
        path = tmp_path / f"{env_id}.toml"
        path.write_text(imported_toml(imported))
        assert load_config_file(path).config == imported.config, env_id


def test_sb3s_defaults_fill_what_the_keywords_leave_out():
    c = import_source("sb3", IMPORTS / "sb3-defaults.json").config
    assert (c.learning_rate, c.replay_capacity, c.learning_starts, c.batch_size) == (1e-4, 1_000_000, 101, 32)
    assert (c.env_steps_per_update, c.gradient_steps, c.target_sync_period, c.hidden_sizes) == (4, 1, 10_000, (64, 64))
    assert (c.epsilon_end, c.epsilon_decay_fraction, c.total_env_steps) == (0.05, 0.1, 100_000)


def test_cleanrls_defaults_run_on_its_clock():
    c = import_source("cleanrl", IMPORTS / "cleanrl-defaults.txt").config
    assert (c.total_env_steps, c.learning_rate, c.replay_capacity, c.batch_size) == (500_000, 2.5e-4, 10_000, 128)
    # global_step > 10000 and a multiple of 10: the first update at index 10010.
    assert c.step_clock == "step_index" and c.clock(10_010) == 10_010
    assert [t for t in range(10_000, 10_030) if c.trains_at(c.clock(t))] == [10_010, 10_020]
    assert (c.target_sync_period, c.target_sync_unit, c.loss, c.max_grad_norm) == (
        500, "env_steps_after_updates", "mse", None
    )  # fmt: skip
    assert (c.epsilon_start, c.epsilon_end, c.epsilon_decay_fraction, c.hidden_sizes) == (1.0, 0.05, 0.5, (120, 84))


def test_a_tau_below_one_is_a_polyak_average_at_the_sources_sync_times():
    sb3 = from_sb3({"tau": 0.1, "target_update_interval": 4}, "CartPole-v1", 10_000).config
    assert (sb3.target_network, sb3.target_tau, sb3.target_sync_period, sb3.target_sync_unit) == (
        "polyak", 0.1, 4, "env_steps"
    )  # fmt: skip
    cleanrl = from_cleanrl({"tau": 0.5, "target_network_frequency": 100})
    c = cleanrl.config
    assert (c.target_network, c.target_tau, c.target_sync_period, c.target_sync_unit) == (
        "polyak", 0.5, 100, "env_steps_after_updates"
    )  # fmt: skip
    assert any("float rounding (an average of two equal tensors)" in d for d in cleanrl.differences)
    assert "target_tau = 0.5  # cleanrl: tau=0.5" in imported_toml(cleanrl)


def test_sb3s_n_step_buffer_is_our_n_step_return():
    imported = from_sb3({"n_steps": 3}, "CartPole-v1", 10_000)
    assert imported.config.n_step == 3
    assert "n_step = 3  # sb3: n_steps=3: SB3's NStepReplayBuffer windows" in imported_toml(imported)
    assert any(d.startswith("n-step returns equal SB3's up to float rounding") for d in imported.differences)


def test_cleanrl_flags_read_as_its_command_line(tmp_path):
    flags = tmp_path / "args.txt"
    flags.write_text("--learning-rate 1e-3 --total-timesteps=20000 --train-frequency 4 --track")
    c = import_source("cleanrl", flags).config
    assert (c.learning_rate, c.total_env_steps, c.env_steps_per_update) == (1e-3, 20_000, 4)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"policy": "CnnPolicy"}, "policy="),
        ({"tau": 0.0}, "tau="),
        ({"tau": 1.5}, "tau="),
        ({"train_freq": [1, "episode"]}, "train_freq="),
        ({"learning_rate": "lin_1e-3"}, "learning_rate="),
        ({"n_envs": 8}, "n_envs="),
        ({"frame_stack": 4}, "frame_stack="),
        ({"replay_buffer_class": "PrioritizedReplayBuffer"}, "replay_buffer_class="),
        ({"optimize_memory_usage": True}, "optimize_memory_usage="),
        ({"n_steps": 0}, "n_steps="),
        ({"gradient_steps": 0}, "gradient_steps="),
        ({"policy_kwargs": "dict(net_arch=[64], activation_fn=nn.Tanh)"}, "policy_kwargs.activation_fn="),
        ({"policy_kwargs": {"optimizer_class": "RMSprop"}}, "policy_kwargs.optimizer_class="),
        ({"policy_kwargs": {"dueling": True}}, "policy_kwargs.dueling="),
        ({"target_update": 100}, "target_update="),
    ],
)
def test_what_cannot_run_exactly_is_one_line_naming_the_key(kwargs, key):
    with pytest.raises(SourceError) as error:
        from_sb3(kwargs, "CartPole-v1", 10_000)
    message = str(error.value)
    assert message.startswith(key) and "\n" not in message


@pytest.mark.parametrize(
    ("overrides", "key"), [({"tau": -0.1}, "tau="), ({"num_envs": 4}, "num_envs="), ({"n": 1}, "n=")]
)
def test_cleanrl_keys_it_cannot_run_are_one_line(overrides, key):
    with pytest.raises(SourceError, match=f"^{key}"):
        from_cleanrl(overrides)


def test_the_import_command_writes_a_toml_with_provenance_and_fails_in_one_line(tmp_path, capsys):
    out = tmp_path / "mine.toml"
    assert main(["import", "rl-zoo", str(ZOO), "--env", "Acrobot-v1", "-o", str(out)]) == 0
    text = out.read_text()
    assert "gradient_steps = 4  # rl-zoo: gradient_steps=-1 (-1: 4 per rollout)" in text
    assert "learning_starts = 1  # rl-zoo: learning_starts=0, + 1" in text
    assert "acts greedily at the very first step" in text  # a difference, said in the header
    bad = tmp_path / "bad.json"
    bad.write_text('{"policy": "MlpPolicy", "tau": 2}')
    assert main(["import", "sb3", str(bad), "--env", "CartPole-v1", "--steps", "1000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: tau=2 cannot be imported: must lie in (0, 1] (1 is a hard copy)"]
    assert main(["import", "rl-zoo", str(ZOO)]) == 2  # four envs and no --env


def test_lint_takes_the_sources_directly(capsys):
    from ablations.diagnosis.command import main as ablations_main

    assert ablations_main(["lint", "--from", "cleanrl", str(IMPORTS / "cleanrl-defaults.txt")]) == 0
    assert ablations_main(["lint", "--from", "rl-zoo", str(ZOO), "--env", "Acrobot-v1"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "lint: cleanrl-defaults.txt: no finding",
        "lint: rl-zoo-dqn.yml: no finding",
    ]
    assert ablations_main(["lint", "--from", "sb3", str(ZOO)]) == 2  # YAML is not a keyword set
    assert "neither a JSON object nor a Python dict literal" in capsys.readouterr().err
