"""Config lint: each rule fires on its own defect, at its boundary, and names the field."""

from pathlib import Path

import pytest

from ablations.diagnosis.command import main
from agents.config import AgentConfig
from agents.configfile import load_config_file
from agents.diagnosis.lint import BREAKS_VALUES, ORDER_CLASSES, POINTLESS, RULES, SECONDARY, Finding, lint
from agents.envprofile import env_profile

KNOWN_CAUSES = Path(__file__).resolve().parents[1] / "examples" / "known-causes"
# A config no rule flags: the neighbour every defect below is one change away from.
HEALTHY = AgentConfig(
    total_env_steps=20_000,
    learning_starts=500,
    epsilon_start=1.0,
    epsilon_end=0.05,
    epsilon_decay_steps=10_000,
)

# (rule, the defect, the field named, the same field just inside the healthy side)
DEFECTS = [
    ("no-update", {"learning_starts": 20_001}, "learning_starts", {"learning_starts": 20_000}),
    (
        "no-update",
        {"learning_starts": 64, "env_steps_per_update": 30_000},
        "env_steps_per_update",
        {"learning_starts": 64, "env_steps_per_update": 20_000},
    ),
    ("never-synced", {"target_sync_period": 19_502}, "target_sync_period", {"target_sync_period": 19_501}),
    # Counted in env steps: a multiple of the period must fall between learning_starts and the
    # last step's clock (20,000 steps taken; CleanRL's index clock ends at 19,999).
    (
        "never-synced",
        {"target_sync_unit": "env_steps", "target_sync_period": 20_001},
        "target_sync_period",
        {"target_sync_unit": "env_steps", "target_sync_period": 20_000},
    ),
    (
        "never-synced",
        {"step_clock": "step_index", "target_sync_unit": "env_steps_after_updates", "target_sync_period": 20_000},
        "target_sync_period",
        {"step_clock": "step_index", "target_sync_unit": "env_steps_after_updates", "target_sync_period": 19_999},
    ),
    (
        "target-barely-moves",
        {"target_network": "polyak", "target_sync_period": None, "target_tau": 5e-5},
        "target_tau",
        {"target_network": "polyak", "target_sync_period": None, "target_tau": 1 / 19_501},
    ),
    # Averaged every 10 env steps: 1,951 averages from learning_starts=500 to step 20,000.
    (
        "target-barely-moves",
        {"target_network": "polyak", "target_sync_unit": "env_steps", "target_sync_period": 10, "target_tau": 5e-4},
        "target_tau",
        {"target_network": "polyak", "target_sync_unit": "env_steps", "target_sync_period": 10, "target_tau": 1 / 1951},
    ),
    ("random-behaviour", {"epsilon_end": 0.5}, "epsilon_end", {"epsilon_end": 0.49}),
    (
        "random-behaviour",
        {"epsilon_start": 1.0, "epsilon_end": 1.0, "epsilon_decay_steps": 0},
        "epsilon_end",
        {"epsilon_start": 0.1, "epsilon_end": 0.1, "epsilon_decay_steps": 0},
    ),
    ("decay-beyond-run", {"epsilon_decay_steps": 20_001}, "epsilon_decay_steps", {"epsilon_decay_steps": 20_000}),
    ("bug-unmasked-terminals", {"terminal_masking": False}, "terminal_masking", {"terminal_masking": True}),
    ("bug-stale-target", {"bug_stale_target": True}, "bug_stale_target", {"bug_stale_target": False}),
    (
        "no-stabiliser",
        {
            "replay_capacity": None,
            "batch_size": 1,
            "learning_starts": 1,
            "target_network": "none",
            "target_sync_period": None,
        },
        "replay_capacity",
        {"replay_capacity": None, "batch_size": 1, "learning_starts": 1},
    ),
    ("learning-rate", {"learning_rate": 0.0231}, "learning_rate", {"learning_rate": 0.023}),
    ("learning-rate", {"learning_rate": 9.9e-6}, "learning_rate", {"learning_rate": 1e-5}),
    ("short-horizon", {"gamma": 0.89}, "gamma", {"gamma": 0.9}),
    ("no-discount", {"gamma": 1.0}, "gamma", {"gamma": 1.0, "bootstrap_on_truncation": False}),
    ("small-buffer", {"replay_capacity": 249}, "replay_capacity", {"replay_capacity": 250}),
    ("long-n-step", {"n_step": 11}, "n_step", {"n_step": 10}),
    ("no-evaluation", {"eval_episodes": 0}, "eval_episodes", {"eval_episodes": 1}),
    # Under a quarter of rl-zoo's 50,000 steps on CartPole-v1 (agents/envprofile.py).
    ("short-budget", {"total_env_steps": 12_499}, "total_env_steps", {"total_env_steps": 12_500}),
    # A goal-reaching env needs a horizon of a quarter of the goal's distance: Acrobot-v1's 100
    # steps need 25 (gamma 0.96), MountainCar-v0's 110 need 27.5 (gamma 1 - 1 / 27.5 = 0.9636).
    ("short-horizon", {"env_id": "Acrobot-v1", "gamma": 0.959}, "gamma", {"env_id": "Acrobot-v1", "gamma": 0.96}),
    (
        "short-horizon",
        {"env_id": "MountainCar-v0", "gamma": 0.9},
        "gamma",
        {"env_id": "MountainCar-v0", "gamma": 0.964},
    ),
    (
        "no-target",
        {"target_network": "none"},
        "target_network",
        {"target_network": "none", "replay_capacity": None, "batch_size": 1, "learning_starts": 1},
    ),
    # Updates per env step 4x outside the sources' 0.1-1: below 1 / 40, above 4.
    ("few-updates", {"env_steps_per_update": 41}, "env_steps_per_update", {"env_steps_per_update": 40}),
    ("many-updates", {"gradient_steps": 5}, "gradient_steps", {"gradient_steps": 4}),
    # One update per env step, in training steps further apart than CartPole-v1's 500-step limit.
    (
        "update-gap",
        {"env_steps_per_update": 501, "gradient_steps": 501},
        "env_steps_per_update",
        {"env_steps_per_update": 500, "gradient_steps": 500},
    ),
    # Bursts beyond 4 x rl-zoo's 128.
    (
        "update-burst",
        {"env_steps_per_update": 513, "gradient_steps": 513},
        "gradient_steps",
        {"env_steps_per_update": 512, "gradient_steps": 512},
    ),
    ("small-batch", {"batch_size": 31}, "batch_size", {"batch_size": 32}),
    ("small-network", {"hidden_sizes": (63, 64)}, "hidden_sizes", {"hidden_sizes": (64, 64)}),
    ("small-network", {"hidden_sizes": (127,)}, "hidden_sizes", {"hidden_sizes": (128,)}),
    (
        "sparse-exploration",
        {"env_id": "MountainCar-v0", "epsilon_start": 1.0},
        "epsilon_start",
        {"env_id": "Acrobot-v1", "epsilon_start": 1.0},
    ),
]
# The order class each rule's findings carry (agents/diagnosis/lint.py ORDER_CLASSES).
ORDER = {
    "no-update": POINTLESS,
    "short-budget": POINTLESS,
    "never-synced": POINTLESS,
    "target-barely-moves": POINTLESS,
    "random-behaviour": POINTLESS,
    "decay-beyond-run": SECONDARY,  # 20,001 decay steps in a 20,000-step run: epsilon ends near 0.05
    "few-updates": POINTLESS,
    "no-evaluation": POINTLESS,
    "bug-unmasked-terminals": BREAKS_VALUES,
    "bug-stale-target": POINTLESS,
    "no-stabiliser": BREAKS_VALUES,
    "no-target": BREAKS_VALUES,
    "learning-rate": BREAKS_VALUES,
    "short-horizon": BREAKS_VALUES,
    "no-discount": BREAKS_VALUES,
    "many-updates": BREAKS_VALUES,
    "small-buffer": SECONDARY,
    "long-n-step": SECONDARY,
    "update-gap": SECONDARY,
    "update-burst": SECONDARY,
    "small-batch": SECONDARY,
    "small-network": SECONDARY,
    "sparse-exploration": SECONDARY,
}


def rules_of(config: AgentConfig) -> set[str]:
    return {finding.rule for finding in lint(config)}


def test_the_healthy_config_has_no_finding():
    assert lint(HEALTHY) == []


@pytest.mark.parametrize(("rule", "defect", "field", "inside"), DEFECTS, ids=[f"{d[0]}-{d[2]}" for d in DEFECTS])
def test_each_rule_fires_on_its_defect_names_the_field_and_not_inside_its_boundary(rule, defect, field, inside):
    findings = [f for f in lint(HEALTHY.replace(**defect)) if f.rule == rule]
    assert len(findings) == 1 and findings[0].field == field
    assert findings[0].value == defect[field]
    assert findings[0].line().startswith(f"{field} = {defect[field]!r}: ")
    assert rule not in rules_of(HEALTHY.replace(**inside))
    assert findings[0].order == ORDER[rule]


@pytest.mark.parametrize("rule", RULES, ids=[rule.__name__ for rule in RULES])
def test_every_rule_is_exercised_by_a_defect_above(rule):
    assert any(rule(HEALTHY.replace(**defect)) for _, defect, _, _ in DEFECTS)


# What lint names first for each known-cause config (examples/known-causes/); None where the
# cause is not visible in the config and only the runs can show it.
FIRST_FINDING = {
    "lr-500x": "learning_rate",
    "random-exploration": "epsilon_end",
    "no-updates": "learning_starts",
    "unmasked-terminals": "terminal_masking",
    # Replay without a target network: the no-target rule (its stated cause is target_network).
    "no-target-large-lr": "target_network",
    "never-synced": "target_sync_period",
    "decay-beyond-run": "epsilon_decay_steps",
    "short-horizon": "gamma",
    "time-limit-terminal": "bootstrap_on_truncation",
    "stale-target": "bug_stale_target",
}


def test_every_known_cause_config_is_listed():
    assert {path.stem for path in KNOWN_CAUSES.glob("*.toml")} == set(FIRST_FINDING)


@pytest.mark.parametrize("name", sorted(FIRST_FINDING))
def test_lint_names_the_known_cause_first(name):
    findings = lint(load_config_file(KNOWN_CAUSES / f"{name}.toml").config)
    expected = FIRST_FINDING[name]
    assert (findings[0].field if findings else None) == expected
    if expected is not None:
        assert len(findings) == 1, [f.line() for f in findings]  # one defect, one finding


def test_the_lint_command_exits_0_1_or_2(tmp_path, capsys):
    assert main(["lint", str(KNOWN_CAUSES / "no-updates.toml")]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "learning_starts = 50000: no gradient update ever happens" in out
    healthy = tmp_path / "healthy.toml"
    healthy.write_text(
        "total_env_steps = 20000\nlearning_starts = 500\nepsilon_start = 1.0\nepsilon_end = 0.05\n"
        "epsilon_decay_steps = 10000\n"
    )
    assert main(["lint", str(healthy)]) == 0
    assert "no finding" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("learning_rate = -1\n")
    assert main(["lint", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "learning_rate" in err


def test_every_known_cause_file_states_its_cause_for_the_benchmark():
    import pandas as pd

    from ablations.diagnosis.known_causes import markdown_table, stated_cause, stated_fields

    causes = {path.stem: stated_cause(path) for path in KNOWN_CAUSES.glob("*.toml")}
    assert all(causes.values()) and not any(c.startswith("#") for c in causes.values())
    # ... and the fields whose change fixes it, each a config field; lint's first finding among them.
    fields = {path.stem: stated_fields(path) for path in KNOWN_CAUSES.glob("*.toml")}
    assert all(fields.values()) and set().union(*fields.values()) <= set(AgentConfig.__dataclass_fields__)
    assert all(FIRST_FINDING[name] in fields[name] for name in fields if FIRST_FINDING[name] is not None)

    table = markdown_table(pd.DataFrame([{"config": "a", "wall_s": 1.5, "error": None}]))
    assert table == "| config | wall_s | error |\n| --- | --- | --- |\n| a | 1.5 |  |\n"


def test_the_benchmark_tables_existing_diagnoses_and_refuses_a_missing_config(tmp_path, capsys):
    import json

    from ablations.diagnosis.known_causes import main as benchmark

    config = KNOWN_CAUSES / "no-updates.toml"
    assert benchmark(["--table-only", "--out", str(tmp_path), str(config)]) == 0
    (row,) = json.loads((tmp_path / "known-causes.json").read_text())
    assert row["config"] == "no-updates" and row["error"] == f"no diagnosis in {tmp_path / 'no-updates'}"
    assert benchmark(["--table-only", "--out", str(tmp_path), "no-updates"]) == 2
    assert capsys.readouterr().err == "error: configs=['no-updates'] is invalid: no such config file\n"


def test_findings_print_by_order_class_pointless_first_then_broken_values_then_secondary():
    # Three defects, one of each class, listed in RULES in the opposite order of their classes' ranks.
    config = HEALTHY.replace(bootstrap_on_truncation=False, learning_rate=0.5, total_env_steps=12_000)
    assert [(f.rule, f.order) for f in lint(config)] == [
        ("short-budget", POINTLESS),
        ("learning-rate", BREAKS_VALUES),
        ("bug-time-limit-terminal", SECONDARY),
    ]
    # The time limit as terminal is the first line only when nothing worse is found.
    assert lint(HEALTHY.replace(bootstrap_on_truncation=False))[0].field == "bootstrap_on_truncation"


def test_a_decay_that_stops_while_the_agent_is_still_random_is_pointless():
    finding = lint(HEALTHY.replace(epsilon_decay_steps=200_000))[0]
    assert finding.rule == "decay-beyond-run" and finding.order == POINTLESS


def test_to_dict_keeps_its_keys_and_adds_the_order_class():
    (finding,) = lint(HEALTHY.replace(gamma=0.5))
    assert finding.to_dict() == {
        "rule": "short-horizon",
        "field": "gamma",
        "value": "0.5",
        "why": finding.why,
        "fix": finding.fix,
        "order": BREAKS_VALUES,
        "order_class": ORDER_CLASSES[BREAKS_VALUES],
    }
    with pytest.raises(ValueError, match="order=4 is invalid"):
        Finding("r", "f", 1, "why", "fix", 4)


def test_the_env_rules_read_the_profile_given_and_stay_silent_without_one():
    import dataclasses

    short = HEALTHY.replace(total_env_steps=1_000, epsilon_decay_steps=500, learning_starts=100)
    assert "short-budget" in rules_of(short)
    no_budget = dataclasses.replace(env_profile("CartPole-v1"), typical_budget=None)
    assert "short-budget" not in {f.rule for f in lint(short, no_budget)}
    # An env gymnasium cannot find: no env facts, no env rule (training reports the bad env).
    assert rules_of(short.replace(env_id="NoSuchEnv-v0")) == set()


def test_the_horizon_rule_is_the_old_ten_step_floor_on_a_dense_reward_and_the_goal_on_a_goal_env():
    # gamma = 0.9 (a 10-step horizon) passes on CartPole-v1 but not on either goal-reaching env.
    assert "short-horizon" not in rules_of(HEALTHY.replace(gamma=0.9))
    for env_id in ("Acrobot-v1", "MountainCar-v0"):
        (finding,) = [f for f in lint(HEALTHY.replace(env_id=env_id, gamma=0.9)) if f.rule == "short-horizon"]
        assert "goal" in finding.why
    # rl-zoo's tuned discounts pass: 0.98 on MountainCar-v0, 0.99 on Acrobot-v1.
    assert "short-horizon" not in rules_of(HEALTHY.replace(env_id="MountainCar-v0", gamma=0.98))
    assert "short-horizon" not in rules_of(HEALTHY.replace(env_id="Acrobot-v1", gamma=0.99))


def test_the_sparse_exploration_finding_says_no_knob_of_the_suite_fixes_it():
    (finding,) = [f for f in lint(HEALTHY.replace(env_id="MountainCar-v0")) if f.rule == "sparse-exploration"]
    assert "no knob of this suite" in finding.why and "outside this suite" in finding.fix
    # Exploration that stays random is random-behaviour's finding, not this one.
    assert "sparse-exploration" not in rules_of(HEALTHY.replace(env_id="MountainCar-v0", epsilon_end=0.5))


def test_the_update_schedule_names_one_field_once():
    # 1 update every 1,000 env steps: few updates and a gap beyond the episode, one line for the field.
    findings = [f for f in lint(HEALTHY.replace(env_steps_per_update=1_000)) if f.field == "env_steps_per_update"]
    assert [f.rule for f in findings] == ["few-updates"]
    # 600 updates every 100 env steps: many updates and a burst beyond 512, one line for gradient_steps.
    findings = [
        f for f in lint(HEALTHY.replace(env_steps_per_update=100, gradient_steps=600)) if f.field == "gradient_steps"
    ]
    assert [f.rule for f in findings] == ["many-updates"]
