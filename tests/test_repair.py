"""The repair path: which change it applies, when it stops, and the files it leaves."""

import json
from pathlib import Path

import pytest

import ablations.diagnosis.repair as repair
from ablations.diagnosis.rungs import trains
from agents.configfile import config_file_text, load_config_file
from reports.diagnosis.record import REPAIR_PATH_FILE, Base, Diagnosis, LintLine, Rung, SeedFigures

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "article-example-1.toml"


def rungs(*rows, converged: int = 4, seeds: int = 8, fields=()) -> tuple[Rung, ...]:
    """Rungs of (key, verdict, P, base IQM, IQM), in the given order; `converged` of each rung's
    `seeds` converge; fields[i] the fields rung i changes."""
    return tuple(
        Rung(
            rung=key,
            change=f"change {key}",
            verdict=verdict,
            effect_size=p,
            ci_low=p - 0.1,
            ci_high=min(1.0, p + 0.1),
            p_adjusted=0.01 if verdict == "supported" else 1.0,
            fields=tuple(fields[i]) if fields else (),
            base=SeedFigures(base, None, 0, seeds),
            with_change=SeedFigures(iqm, None, converged, seeds, {"converged": converged}),
        )
        for i, (key, verdict, p, base, iqm) in enumerate(rows)
    )


def base(trains: bool = False, learned: int = 0, lint=()) -> Base:
    outcomes = {"converged": learned, "soft-diverged": 8 - learned}
    return Base("article-example-1", "x.toml", trains, 250.0, "suite", outcomes, (9.0,) * 8, 9.0, None, None, None,
                lint=tuple(LintLine.from_dict(f) for f in lint))  # fmt: skip


def diagnosis(*rows, lint=(), **options) -> Diagnosis:
    return Diagnosis(base(lint=lint), rungs(*rows, **options))


def test_a_settled_change_wins_over_a_larger_unsettled_one():
    ranked = diagnosis(("lr-x3", "inconclusive", 0.9, 9.0, 300.0), ("terminal-masking", "supported", 0.8, 9.0, 200.0))
    rung, how = repair.choose_change(ranked)
    assert rung.rung == "terminal-masking" and how == repair.SETTLED


def test_the_change_that_confirms_a_lint_finding_wins_over_a_higher_ranked_one():
    rows = (("no-target", "supported", 0.95, 9.0, 300.0), ("eps-constant", "supported", 0.8, 9.0, 200.0))
    fields = [("double_q", "target_network", "target_sync_period"), ("epsilon_decay_steps", "epsilon_start")]
    finding = {"rule": "decay-beyond-run", "field": "epsilon_decay_steps", "value": "200000", "why": "w", "fix": "f"}
    rung, how = repair.choose_change(diagnosis(*rows, lint=[finding], fields=fields))
    assert rung.rung == "eps-constant" and how == f"{repair.CAUSE} epsilon_decay_steps"
    # A finding no settled change confirms leaves the ranking's choice.
    other = {**finding, "field": "gamma"}
    assert repair.choose_change(diagnosis(*rows, lint=[other], fields=fields))[0].rung == "no-target"


def test_without_a_settled_change_the_best_lift_is_applied_and_labelled():
    ranked = diagnosis(("huber", "inconclusive", 0.5, 9.0, 9.0), ("clip", "inconclusive", 0.6, 9.0, 20.0))
    rung, how = repair.choose_change(ranked)
    assert rung.rung == "clip" and how == repair.UNSETTLED
    # P(improvement) above 0.5 but a lower IQM, or a hurt: nothing helps.
    nothing = diagnosis(("a", "inconclusive", 0.6, 9.0, 8.0), ("b", "refuted", 0.1, 9.0, 1.0))
    assert repair.choose_change(nothing) is None


def test_the_rung_fields_leave_out_what_the_session_sized():
    meta = {
        "variants": {
            "mine": {"config": {"terminal_masking": False, "total_env_steps": 20_000, "gamma": 0.99}},
            "mine+terminal-masking": {"config": {"terminal_masking": True, "total_env_steps": 20_000, "gamma": 0.99}},
        }
    }
    assert repair.rung_fields(meta, "mine", "terminal-masking") == {"terminal_masking": True}


def meta_for(base: str, rung: str, fields: dict) -> dict:
    config = load_config_file(EXAMPLE).config.to_dict()
    return {"variants": {base: {"config": config}, f"{base}+{rung}": {"config": {**config, **fields}}}}


@pytest.fixture
def rounds(monkeypatch):
    """Scripted rounds: results folder -> (diagnosis, meta)."""
    script = {}
    monkeypatch.setattr(repair, "read_round", lambda results_dir: script[Path(results_dir).name])
    return script


def first_round(rounds, tmp_path, converged: int, seeds: int = 8) -> None:
    """Round 1: example 1 does not train on 8 seeds; masking terminals settles, `converged` of `seeds`."""
    rounds[tmp_path.name] = (
        diagnosis(("terminal-masking", "supported", 1.0, 9.3, 217.0), converged=converged, seeds=seeds),
        meta_for("article-example-1", "terminal-masking", {"terminal_masking": True}),
    )


def test_the_path_applies_the_change_and_stops_when_the_next_base_trains(tmp_path, rounds):
    loaded = load_config_file(EXAMPLE)
    first_round(rounds, tmp_path, converged=8, seeds=16)  # half is not a majority: a second round
    rounds["round-2"] = (Diagnosis(base(True, 6)), {})
    ran = []
    steps = repair.repair_path(loaded, tmp_path, 3, lambda c, o: ran.append((c.name, o.name)))
    assert ran == [("round-2.toml", "round-2")]
    assert [(s.round, s.trains, s.rung) for s in steps] == [(1, False, "terminal-masking"), (2, True, None)]
    repaired = load_config_file(tmp_path / repair.REPAIRED_FILE)
    assert repaired.config == loaded.config.replace(terminal_masking=True)
    assert load_config_file(tmp_path / "round-2.toml").config == repaired.config
    path = json.loads((tmp_path / REPAIR_PATH_FILE).read_text())
    assert path["repaired"] == repair.REPAIRED_FILE
    assert "applying (settled): change terminal-masking (IQM 217, 8 of 16 learn" in path["steps"][0]["line"]
    assert path["steps"][1]["line"].endswith("it trains.")


def test_a_rung_that_already_trains_ends_the_path_without_another_session(tmp_path, rounds):
    first_round(rounds, tmp_path, converged=5)
    steps = repair.repair_path(load_config_file(EXAMPLE), tmp_path, 3, lambda c, o: pytest.fail("no second ladder"))
    last = steps[-1]
    assert (last.round, last.trains, last.learned, last.seeds, last.from_rung) == (2, True, 5, 8, "terminal-masking")
    assert last.results == str(tmp_path) and last.late_return_iqm == 217.0
    assert "round 1's terminal-masking rung" in last.line()
    assert "It trains: a majority of its seeds converged at 50,000 env steps per seed." in (
        tmp_path / repair.REPAIRED_FILE
    ).read_text()


def test_after_the_last_round_the_path_ends_on_its_rung(tmp_path, rounds):
    first_round(rounds, tmp_path, converged=3)
    steps = repair.repair_path(load_config_file(EXAMPLE), tmp_path, 1, lambda c, o: pytest.fail("no second ladder"))
    assert [s.round for s in steps] == [1, 2] and not steps[-1].trains
    assert steps[-1].learned == 3 and "the rounds ran out" in steps[-1].line()
    assert "It does not train yet at 50,000 env steps per seed." in (tmp_path / repair.REPAIRED_FILE).read_text()


def test_when_nothing_helps_the_path_stops_without_a_repaired_config(tmp_path, rounds):
    rounds[tmp_path.name] = (diagnosis(("huber", "refuted", 0.2, 9.0, 5.0)), {})
    steps = repair.repair_path(load_config_file(EXAMPLE), tmp_path, 3, None)
    assert len(steps) == 1 and steps[0].change is None
    assert "no change helps" in steps[0].line()
    assert not (tmp_path / repair.REPAIRED_FILE).exists()


@pytest.mark.parametrize("path", sorted(ROOT.glob("examples/**/*.toml")), ids=lambda p: p.stem)
def test_a_written_config_file_reads_back_the_same(path, tmp_path):
    loaded = load_config_file(path)
    copy = tmp_path / "copy.toml"
    copy.write_text(config_file_text(loaded.name, loaded.config, loaded.env, "a header\nof two lines"))
    again = load_config_file(copy)
    assert (again.name, again.config, again.env) == (loaded.name, loaded.config, loaded.env)


@pytest.mark.parametrize(
    ("converged", "seeds", "expected"), [(4, 8, False), (5, 8, True), (2, 3, True), (1, 2, False), (0, 0, False)]
)
def test_it_trains_when_more_than_half_of_its_seeds_converge(converged, seeds, expected):
    assert trains(converged, seeds) is expected
