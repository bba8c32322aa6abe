"""The diagnosis plan (ablations/diagnosis/plan.py): its stages, its budget caveat, and the error
control of rungs added in stages (ablations/diagnosis/families.py) on exact and synthetic cases."""

import math

import numpy as np
import pytest

from ablations.claims.procedure import Claim, Evidence, evaluate_family
from ablations.diagnosis.families import evaluate_families, family_claims
from ablations.diagnosis.plan import (
    FIRST_SCREEN_AGENT_STEPS,
    TRIAGE_SIZE,
    DiagnosisPlan,
    Family,
    build_plan,
    read_plan,
    write_plan,
)
from ablations.settings import sized_config
from agents.config import AgentConfig
from reports.analysis import stats


def _size(config, steps):
    return sized_config(config, config.env_id, steps)


def _plan(ladder, flagged, triage=None, alpha=None) -> DiagnosisPlan:
    other = tuple(k for k in ladder if k not in flagged)
    share = alpha or stats.ALPHA / 2
    return DiagnosisPlan(
        profile="quick",
        env_id="CartPole-v1",
        own_steps=20_000,
        steps=20_000,
        affordable_steps=30_000,
        seeds=9,
        max_seeds=18,
        ladder=tuple(ladder),
        families=(Family("flagged", share, tuple(flagged)), Family("other", share, other)),
        triage=triage,
    )


def test_stage_one_trains_the_first_triage_rungs_and_stage_two_the_rest():
    ladder = tuple("abcdefg")
    untriaged = _plan(ladder, "ab")
    assert untriaged.stage_rungs(0) == () and untriaged.stage_rungs(1) == ladder and untriaged.stage_rungs(2) == ()
    triaged = untriaged.triaged([], [])  # no lint finding, no symptom: nothing points anywhere
    assert triaged.triage == () and triaged.stage_rungs(1) == () and triaged.stage_rungs(2) == ladder
    plan = _plan(ladder, "ab", triage=("f", "a", "c", "b"))
    assert plan.stage_rungs(1) == ("f", "a", "c")[:TRIAGE_SIZE]
    assert set(plan.stage_rungs(1)) | set(plan.stage_rungs(2)) == set(ladder)
    assert not set(plan.stage_rungs(1)) & set(plan.stage_rungs(2))
    assert plan.trained_through(1) == ("a", "c", "f") and plan.trained_through(2) == ladder
    with pytest.raises(ValueError, match="stage=3"):
        plan.stage_rungs(3)


def test_stage_one_takes_triage_rungs_in_order_while_the_first_screen_fits_its_compute():
    import dataclasses

    # Standard: the first screen is the base and TRIAGE_SIZE rungs of the base's cost (4 units).
    plan = dataclasses.replace(_plan(tuple("abcde"), "ab"), profile="standard", costs=(1.0, 8.0, 1.0, 1.0, 1.0))
    assert plan.first_screen_units() == 1 + TRIAGE_SIZE
    assert plan.admitted(("a", "b", "c", "d", "e")) == ("a", "c", "d")  # b (8 units) waits for stage 2
    assert plan.admitted(("b", "a", "c")) == ("b",)  # the likeliest fix trains first whatever it costs
    # Quick: the profile's compute over the base's run; a small budget leaves room for costly rungs.
    small = dataclasses.replace(plan, profile="quick", own_steps=10_000, steps=10_000)
    assert small.first_screen_units() == FIRST_SCREEN_AGENT_STEPS["quick"] / (9 * 10_000)
    assert small.admitted(("a", "b", "c", "d")) == ("a", "b", "c")


def test_a_plan_is_invalid_when_its_families_do_not_partition_the_ladder_or_overspend_alpha():
    with pytest.raises(ValueError, match="families="):
        DiagnosisPlan("quick", "CartPole-v1", 10, 10, None, 3, None, ("a", "b"), (Family("other", 0.05, ("a",)),))
    with pytest.raises(ValueError, match="alpha sum"):
        _plan(("a", "b"), "a", alpha=0.04)


def test_the_families_are_fixed_by_lint_on_the_config_alone():
    # No target network with replay: lint flags target_network, whose rung is "target".
    clean = AgentConfig(env_id="CartPole-v1", total_env_steps=60_000)  # lint finds nothing in it
    config = clean.replace(target_network="none")
    plan = build_plan(config, "standard", 20, _size)
    flagged = {f.name: f for f in plan.families}["flagged"]
    assert flagged.rungs == ("target",) and [f.alpha for f in plan.families] == [stats.ALPHA / 2] * 2
    # Nothing flagged: one family, the whole ladder at the whole alpha.
    unflagged = build_plan(clean, "standard", 20, _size)
    assert [(f.name, f.alpha, f.rungs) for f in unflagged.families] == [("other", stats.ALPHA, unflagged.ladder)]


def test_a_budget_beyond_what_the_profile_affords_trains_its_prefix_and_says_so():
    own = 400_000
    config = AgentConfig(env_id="CartPole-v1", total_env_steps=own)
    plan = build_plan(config, "quick", 8, _size)
    # The affordable budget is the profile's compute over the first screen's variants and seeds.
    assert plan.affordable_steps == FIRST_SCREEN_AGENT_STEPS["quick"] // (plan.seeds * (1 + TRIAGE_SIZE))
    assert plan.steps == plan.affordable_steps < own and plan.shortened
    line = plan.budget_line()
    assert line.startswith("budget: your 400,000 env steps are beyond what the quick profile affords")
    assert f"diagnosing the first {plan.steps:,} steps" in line
    # Within the budget: the config's own steps, no caveat; standard trains any budget.
    within = build_plan(config.replace(total_env_steps=plan.affordable_steps // 2), "quick", 8, _size)
    assert within.steps == plan.affordable_steps // 2 and within.budget_line() is None
    standard = build_plan(config, "standard", 20, _size)
    assert standard.steps == own and standard.affordable_steps is None and standard.budget_line() is None


def test_a_plan_round_trips_through_its_file_and_a_bad_file_is_one_line(tmp_path):
    plan = _plan(tuple("abcd"), "a", triage=("a", "c"))
    assert read_plan(write_plan(plan, tmp_path / "plan.json")) == plan
    (tmp_path / "bad.json").write_text('{"profile": "quick"}')
    with pytest.raises(ValueError, match=r"^plan='.*bad.json' is invalid: "):
        read_plan(tmp_path / "bad.json")


def _fixed(key: str, p: float) -> Claim:
    """A claim whose p-value is p for it and 1 - p against it, at every look."""

    def evaluate(summaries, alpha):
        return Evidence(stats.Decision(stats.INCONCLUSIVE, "fixed", 0.0, 0.0, 0.0, p, 20, None, 1 - p))

    return Claim(key, key, "synthetic", (), evaluate)


def _settle(plan, stage, p_values, stages=(20,)):
    claims = {key: _fixed(key, p) for key, p in p_values.items()}
    return evaluate_families(plan, stage, claims, lambda names, count: {}, list(stages))


def test_untrained_members_hold_their_holm_places_exactly():
    # flagged {a, b} at alpha/2, other {c, d, e, f, g} at alpha/2; triage trains a, b, c first.
    plan = _plan(tuple("abcdefg"), "ab", triage=("a", "b", "c"))
    p = {"a": 0.004, "b": 0.3, "c": 0.004, "d": 0.5, "e": 0.5, "f": 0.5, "g": 0.5}
    stage_one = _settle(plan, 1, p)
    assert set(stage_one) == {"a", "b", "c"}
    # a: Holm over 2 x 2 directions, 4 x 0.004 = 0.016 < 0.025.
    assert stage_one["a"].verdict == stats.SUPPORTED and stage_one["a"].p_adjusted == pytest.approx(0.016)
    # c: its family has 5 members, 4 untrained at p = 1: 10 x 0.004 = 0.04 > 0.025. A family of the
    # triage rungs alone at alpha (Holm over 3 x 2: 0.024 < 0.05) would have supported it.
    assert stage_one["c"].verdict == stats.INCONCLUSIVE and stage_one["c"].p_adjusted == pytest.approx(0.04)
    naive = evaluate_family([_fixed(k, p[k]) for k in "abc"], lambda names, count: {}, [20], stats.ALPHA)
    assert naive["c"].verdict == stats.SUPPORTED
    # Stage 2 settles each family whole: c stays at 0.04 (the others' p = 0.5 rank after it).
    stage_two = _settle(plan, 2, p)
    assert set(stage_two) == set("abcdefg") and stage_two["c"].p_adjusted == pytest.approx(0.04)
    # A family none of whose members trained in the stage is not settled at all.
    assert [len(claims) for _, claims in family_claims(_plan(tuple("abc"), "a", triage=("a",)), 1, {"a": None})] == [1]


def test_a_stage_rejects_a_subset_of_what_the_whole_family_rejects():
    rng = np.random.default_rng(3)
    plan = _plan(tuple("abcdefgh"), "abc", triage=("a", "d", "e"))
    for _ in range(200):
        p = dict(zip("abcdefgh", rng.uniform(0, 0.02, 8)))
        stage_one = {k for k, s in _settle(plan, 1, p, (10, 20)).items() if s.verdict == stats.SUPPORTED}
        whole = {k for k, s in _settle(plan, 2, p, (10, 20)).items() if s.verdict == stats.SUPPORTED}
        assert stage_one <= whole


def test_data_chosen_triage_keeps_the_family_wise_error_at_alpha_where_its_own_family_would_not():
    # The complete null; the symptoms pick the "other" family's triage rungs adversarially: the
    # ones with the smallest p-values (a worst case for a pick that reads the shared base's runs).
    rng = np.random.default_rng(7)
    ladder = tuple(f"r{i}" for i in range(16))
    flagged = ladder[:2]
    families = 2_000
    false_staged = false_naive = 0
    for _ in range(families):
        p = dict(zip(ladder, rng.uniform(size=len(ladder))))
        picked = sorted(ladder[2:], key=lambda k: min(p[k], 1 - p[k]))[:TRIAGE_SIZE]
        plan = _plan(ladder, flagged, triage=tuple(picked))
        staged = _settle(plan, 1, p)
        false_staged += any(s.verdict != stats.INCONCLUSIVE for s in staged.values())
        naive = evaluate_family([_fixed(k, p[k]) for k in picked], lambda names, count: {}, [20], stats.ALPHA)
        false_naive += any(s.verdict != stats.INCONCLUSIVE for s in naive.values())
    error = math.sqrt(stats.ALPHA * (1 - stats.ALPHA) / families)
    assert false_staged / families <= stats.ALPHA + 2 * error
    # The pick's own family at alpha: P(min of 28 null p-values < alpha / 6) is about 0.21.
    assert false_naive / families > stats.ALPHA + 4 * error


def test_an_empty_cause_fields_line_is_answered_only_by_a_finding_that_no_knob_fixes_it():
    from ablations.diagnosis.known_causes import names_stated
    from reports.diagnosis.cause import CONFIRMED, UNSETTLED
    from reports.diagnosis.record import Cause, LintLine, Rung

    sparse = Cause(UNSETTLED, "epsilon_start", LintLine("sparse-exploration", "epsilon_start", "1.0", "w", "f"), None)
    short = LintLine("short-budget", "total_env_steps", "1000", "w", "f")
    budget = Cause(CONFIRMED, "total_env_steps", short, Rung("x", "x", "supported"))
    assert names_stated(sparse, set()) and not names_stated(budget, set())
    # With fields stated, a cause is the stated one when it names one of them.
    assert names_stated(budget, {"total_env_steps", "learning_starts"}) and not names_stated(sparse, {"gamma"})


def test_the_benchmark_times_the_first_settled_line_and_stops_a_diagnosis_at_its_timeout(tmp_path):
    import sys

    from ablations.diagnosis.known_causes import timed_diagnosis

    script = "import time; print('cause: x', flush=True); time.sleep(0.5); print('settled: a cause', flush=True); "
    done = timed_diagnosis([sys.executable, "-c", script + "time.sleep(0.1)"], tmp_path / "a.log")
    assert done["exit"] == 0 and done["stopped_at_s"] is None and done["error"] is None
    assert 0.5 <= done["wall_first_settled_s"] <= done["wall_s"]
    stopped = timed_diagnosis([sys.executable, "-c", script + "time.sleep(60)"], tmp_path / "b.log", timeout=3)
    assert stopped["stopped_at_s"] == 3 and stopped["wall_s"] < 30 and stopped["error"] is None
    assert "settled: a cause" in (tmp_path / "b.log").read_text()


def test_a_diagnosis_session_keeps_each_variants_own_steps_where_the_suite_resizes_its_presets(tmp_path):
    from pathlib import Path

    from ablations.settings import AblationSettings
    from agents.configfile import load_config_file

    loaded = load_config_file(Path(__file__).resolve().parent.parent / "examples" / "article-example-1.toml")
    common = dict(
        profile="quick",
        seeds=(0, 1),
        env_steps=10_000,
        env_id="CartPole-v1",
        out_dir=tmp_path,
        cache_dir=tmp_path,
        rerun=False,
        write_report=False,
        session_id="s",
    )
    steps_rung = loaded.config.replace(total_env_steps=40_000)  # the steps-x4 rung of a 10k base
    assert AblationSettings(**common, config_file=loaded).configure(steps_rung).total_env_steps == 40_000
    assert AblationSettings(**common).configure(steps_rung).total_env_steps == 10_000


def test_the_triage_line_names_what_trains_first_and_what_waits_for_its_cost():
    import dataclasses

    from ablations.diagnosis.staged import triage_line

    plan = dataclasses.replace(
        _plan(tuple("abc"), "a", triage=("a", "b", "c")), profile="standard", costs=(1.0, 8.0, 1.0)
    )
    assert triage_line(plan) == (
        "triage: training first a, c (symptoms of your DQN: none); b cost more than the first screen affords, "
        "left to stage 2"
    )


def test_a_session_trains_the_prefix_its_plan_affords():
    import subprocess
    import sys
    from pathlib import Path

    # article-example-1's 50,000 steps are beyond the quick first screen: the session's base is the
    # 30,000-step prefix, below CartPole-v1's typical 50,000, so its ladder has the steps rung.
    example = Path(__file__).resolve().parent.parent / "examples" / "article-example-1.toml"
    command = [sys.executable, "-m", "pytest", "--pyargs", "ablations", f"--ablation-config={example}"]
    command += ["--ablation-profile=quick", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-1000:] + done.stderr[-1000:]
    assert "test_change[steps-x4]" in done.stdout
