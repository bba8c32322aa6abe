import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.catalogue.presets import VARIANTS, get_variant
from agents.config import AgentConfig, ConfigError


def test_default_config_is_valid_and_round_trips():
    config = AgentConfig()
    assert AgentConfig.from_json(config.to_json()) == config


configs = st.builds(
    AgentConfig,
    total_env_steps=st.integers(1, 10**7),
    gamma=st.floats(0, 1),
    learning_rate=st.floats(1e-6, 1.0),
    loss=st.sampled_from(["mse", "huber"]),
    batch_size=st.integers(1, 256),
    replay_capacity=st.integers(256, 10**6),
    learning_starts=st.integers(256, 10**4),
    double_q=st.booleans(),
    terminal_masking=st.booleans(),
    bootstrap_on_truncation=st.booleans(),
    max_grad_norm=st.none() | st.floats(0.01, 100),
    epsilon_start=st.floats(0, 1),
    epsilon_end=st.floats(0, 1),
    epsilon_decay_steps=st.integers(0, 10**6),
    hidden_sizes=st.lists(st.integers(1, 512), min_size=1, max_size=4).map(tuple),
)


@given(configs)
def test_json_round_trip_preserves_config_and_hash(config):
    again = AgentConfig.from_json(config.to_json())
    assert again == config
    assert again.content_hash() == config.content_hash()


@pytest.mark.integration
def test_content_hash_is_stable_across_processes():
    """The hash does not depend on Python's per-process string hashing."""
    code = (
        "from agents.catalogue.presets import get_variant; "
        "print(get_variant('article-target').config.content_hash())"
    )
    outs = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        outs.add(
            subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
        )
    assert outs == {get_variant("article-target").config.content_hash() + "\n"}


def test_content_hash_distinguishes_every_preset_and_every_knob():
    hashes = {v.config.content_hash() for v in VARIANTS.values()}
    assert len(hashes) == len(VARIANTS)
    base = AgentConfig()
    assert base.replace(gamma=0.98).content_hash() != base.content_hash()
    assert base.replace(device="cuda").content_hash() != base.content_hash()


@given(
    start=st.floats(0, 1),
    end=st.floats(0, 1),
    decay=st.integers(1, 10_000),
    step=st.integers(0, 100_000),
)
def test_epsilon_schedule_is_linear_then_constant(start, end, decay, step):
    config = AgentConfig(epsilon_start=start, epsilon_end=end, epsilon_decay_steps=decay)
    eps = config.epsilon(step)
    assert min(start, end) - 1e-12 <= eps <= max(start, end) + 1e-12
    assert config.epsilon(0) == start
    if step >= decay:
        assert eps == end
    else:
        assert eps == pytest.approx(start + step / decay * (end - start), abs=1e-12)


@given(step=st.integers(0, 10**6))
def test_constant_epsilon_without_decay(step):
    assert AgentConfig(epsilon_start=0.9, epsilon_end=0.1, epsilon_decay_steps=0).epsilon(step) == 0.1


BAD = [
    ({"total_env_steps": -5}, "total_env_steps", "-5"),
    ({"total_env_steps": 0}, "total_env_steps", "0"),
    ({"gamma": 1.5}, "gamma", "1.5"),
    ({"gamma": -0.1}, "gamma", "-0.1"),
    ({"gamma": float("nan")}, "gamma", "nan"),
    ({"target_network": "polyak", "target_sync_period": None, "target_tau": 0.0}, "target_tau", "0.0"),
    ({"target_network": "polyak", "target_sync_period": None, "target_tau": 1.5}, "target_tau", "1.5"),
    ({"replay_capacity": 32, "batch_size": 64}, "replay_capacity", "32"),
    ({"replay_capacity": None, "batch_size": 64}, "batch_size", "64"),
    ({"learning_rate": 0.0}, "learning_rate", "0.0"),
    ({"loss": "l1"}, "loss", "'l1'"),
    ({"target_network": "soft"}, "target_network", "'soft'"),
    ({"target_network": "hard", "target_sync_period": 0}, "target_sync_period", "0"),
    ({"target_network": "none", "target_sync_period": None, "double_q": True}, "double_q", "True"),
    ({"epsilon_start": 1.2}, "epsilon_start", "1.2"),
    ({"hidden_sizes": (64, 0)}, "hidden_sizes", "(64, 0)"),
    ({"batch_size": 2.5}, "batch_size", "2.5"),
    ({"max_grad_norm": -1.0}, "max_grad_norm", "-1.0"),
    ({"learning_starts": 0}, "learning_starts", "0"),
    ({"gradient_steps": 0}, "gradient_steps", "0"),
    ({"step_clock": "episodes"}, "step_clock", "'episodes'"),
    ({"target_sync_unit": "episodes"}, "target_sync_unit", "'episodes'"),
    ({"target_network": "polyak", "target_sync_unit": "episodes"}, "target_sync_unit", "'episodes'"),
    ({"target_network": "none", "target_sync_unit": "env_steps"}, "target_sync_unit", "'env_steps'"),
    ({"target_network": "polyak", "target_sync_period": 0}, "target_sync_period", "0"),
    ({"epsilon_decay_fraction": 1.5}, "epsilon_decay_fraction", "1.5"),
    ({"epsilon_decay_fraction": 0.5, "epsilon_decay_steps": 100}, "epsilon_decay_fraction", "0.5"),
    ({"random_warmup": 1}, "random_warmup", "1"),
    ({"target_network": "none", "target_sync_period": 50}, "target_sync_period", "50"),
    ({"target_network": "hard", "target_tau": 0.01}, "target_tau", "0.01"),
]


@pytest.mark.parametrize("changes,field,shown", BAD, ids=[b[1] + "=" + b[2] for b in BAD])
def test_bad_values_raise_an_error_naming_field_and_value(changes, field, shown):
    with pytest.raises(ConfigError) as info:
        AgentConfig(**changes)
    assert f"{field}={shown}" in str(info.value)


def test_a_target_rules_own_field_defaults_to_its_usual_value_only_under_that_rule():
    assert AgentConfig(target_network="hard").target_sync_period == 100
    assert AgentConfig(target_network="polyak").target_tau == 0.005
    polyak = AgentConfig(target_network="polyak")
    assert (polyak.target_sync_period, polyak.target_sync_unit) == (1, "updates")  # an average every update
    none = AgentConfig(target_network="none")
    assert none.target_sync_period is None and none.target_tau is None
    # the filled-in default is the same config (and hash) as writing it out
    assert AgentConfig().content_hash() == AgentConfig(target_sync_period=100).content_hash()


def test_unknown_field_in_json_is_named():
    data = json.loads(AgentConfig().to_json())
    data["target_update_freq"] = 5
    with pytest.raises(ConfigError, match="target_update_freq=5"):
        AgentConfig.from_dict(data)


def test_unknown_preset_is_named_with_the_known_ones():
    with pytest.raises(ConfigError) as info:
        get_variant("article-nope")
    assert "variant='article-nope'" in str(info.value)
    assert "article-naive" in str(info.value)


def test_article_presets_reproduce_the_article_switches():
    naive, replay, target = (get_variant(n).config for n in ("article-naive", "article-replay", "article-target"))
    assert naive.replay_capacity is None and naive.batch_size == 1 and naive.target_network == "none"
    assert naive.terminal_masking is False  # example 1 ignores done in its target
    assert replay.bootstrap_on_truncation is False and target.bootstrap_on_truncation is False  # old-gym done
    assert replay.learning_starts == replay.batch_size  # updates start once the buffer holds a batch
    assert target.target_network == "hard" and target.replace(target_network="none", target_sync_period=None) == replay
    for config in (naive, replay, target):
        assert config.epsilon(0) == config.epsilon(10**6) == 0.1
        assert config.loss == "mse" and config.hidden_sizes == (64, 64) and config.learning_rate == 1e-3


def test_the_schedules_of_other_libraries_read_as_they_do_there():
    # SB3's gradient_steps = -1: one update per env step collected; its clock counts steps taken.
    sb3 = AgentConfig(total_env_steps=100, learning_starts=11, env_steps_per_update=4, gradient_steps=-1)
    assert sb3.gradient_steps == 4
    assert [c for c in range(1, 101) if sb3.trains_at(c)][:3] == [12, 16, 20]
    assert sb3.gradient_updates == 4 * len(range(12, 101, 4))
    # CleanRL's clock is the step's index: the last step of a 100-step run is clock 99.
    cleanrl = sb3.replace(step_clock="step_index", gradient_steps=1)
    assert cleanrl.clock(99) == 99 and cleanrl.gradient_updates == len(range(12, 100, 4))
    # A batch may be larger than what is stored when learning starts (drawn with replacement).
    assert AgentConfig(batch_size=128, learning_starts=1).learning_starts == 1


def test_exploration_as_a_fraction_of_the_run_and_a_random_warm_up():
    config = AgentConfig(
        total_env_steps=1_000, epsilon_start=1.0, epsilon_end=0.0, epsilon_decay_fraction=0.5, learning_starts=10
    )
    assert config.decay_steps == 500.0
    assert [config.epsilon(t) for t in (0, 250, 500, 900)] == [1.0, 0.5, 0.0, 0.0]
    warm = config.replace(random_warmup=True, epsilon_start=0.2)
    # Steps taken 1..9 are before learning starts (clock < 10): random; from clock 10 the schedule.
    assert warm.epsilon(8) == 1.0 and warm.epsilon(9) == config.replace(epsilon_start=0.2).epsilon(9)


def test_switching_the_target_rule_drops_the_old_rules_own_fields():
    hard = AgentConfig(target_sync_period=500, target_sync_unit="env_steps")
    assert hard.replace(target_network="polyak").target_tau == 0.005
    assert hard.replace(target_network="none").target_sync_period is None
    assert hard.replace(learning_rate=0.01).target_sync_period == 500
