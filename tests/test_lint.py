"""Config lint: each rule fires on its own defect, at its boundary, and names the field."""

from pathlib import Path

import pytest

from ablations.__main__ import main
from agents.config import AgentConfig
from agents.configfile import load_config_file
from agents.diagnosis.lint import RULES, lint

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
]


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
    "no-target-large-lr": None,
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
    assert main(["lint", str(KNOWN_CAUSES / "no-target-large-lr.toml")]) == 0
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
