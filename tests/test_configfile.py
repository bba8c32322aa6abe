"""Config files: the shipped examples load, and every problem is one line naming file, key and value."""

from pathlib import Path

import pytest

from agents.catalogue.presets import get_variant
from agents.cli import main
from agents.config import ConfigError
from agents.configfile import load_config_file

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_article_example_file_is_the_article_preset():
    loaded = load_config_file(EXAMPLES / "article-example-1.toml")
    assert loaded.name == "article-example-1"
    assert loaded.config == get_variant("article-naive").config


def test_every_shipped_example_loads():
    files = sorted(EXAMPLES.glob("*.toml"))
    assert len(files) >= 2
    for path in files:
        loaded = load_config_file(path)
        assert loaded.config.env_id and loaded.name
    acrobot = load_config_file(EXAMPLES / "acrobot-dqn.toml")
    assert acrobot.config.env_id == "Acrobot-v1" and acrobot.env.success_threshold == -100.0


@pytest.mark.parametrize(
    "text,message",
    [
        ("gamma = 0.99\nlerning_rate = 0.1\n", "lerning_rate = 0.1 is invalid: not a configuration field"),
        ("gamma = 1.5\n", "gamma=1.5 is invalid: must lie in [0, 1]"),
        ('gamma = "high"\n', "gamma='high' is invalid: must be a number"),
        ("replay_capacity = 10\nbatch_size = 64\n", "replay_capacity=10 is invalid: must be >= batch_size=64"),
        ("gamma = = 3\n", "not valid TOML"),
        ("[env]\nsuccess = 3\n", "env.success = 3 is invalid: not an env setting"),
        ('[env]\nmax_abs_reward = "big"\n', "env.max_abs_reward = 'big' is invalid: must be a finite number"),
        ('name = ""\n', "name = '' is invalid"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_file_key_and_value(tmp_path, text, message):
    path = tmp_path / "my-dqn.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config_file(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_or_unreadable_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config_file(tmp_path / "absent.toml")
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="binary.toml: cannot be read"):
        load_config_file(tmp_path / "binary.toml")


def test_train_takes_a_config_file(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text((EXAMPLES / "article-example-1.toml").read_text().replace("50_000", "200"))
    assert main(["train", "--config", str(path), "--seeds", "0-1", "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert out.count("article-example-1 seed ") == 2 and "saved" in out
    bad = tmp_path / "bad.toml"
    bad.write_text("gamma = 2\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {bad}: gamma=2 is invalid: must lie in [0, 1]"


def test_a_five_line_file_without_a_target_network_is_accepted(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'env_id = "CartPole-v1"\ntotal_env_steps = 5000\ntarget_network = "none"\n'
        "learning_rate = 0.001\nreplay_capacity = 10000\n"
    )
    config = load_config_file(path).config
    assert config.target_network == "none" and config.target_sync_period is None
