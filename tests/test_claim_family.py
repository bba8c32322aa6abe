"""The claim family's decision procedure (ablations/claims/article.py) on synthetic data: Holm across the
family, O'Brien-Fleming looks for seeds on demand, crashes kept apart."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from ablations.claims.procedure import ERROR, Claim, Evidence, Refutation, evaluate_family
from reports.analysis import stats

MAX_SEEDS = 80


def _z_test_claim(key: str) -> Claim:
    """'variant key-a exceeds key-b': a fast one-sided z-test on the mean difference (unit
    variance known), so a simulation can run thousands of families."""

    def evaluate(summaries, alpha):
        a = summaries[f"{key}-a"]["late_return"].to_numpy()
        b = summaries[f"{key}-b"]["late_return"].to_numpy()
        z = (a.mean() - b.mean()) / math.sqrt(1 / a.size + 1 / b.size)
        p, p_opposite = scipy_stats.norm.sf(z), scipy_stats.norm.cdf(z)
        difference = a.mean() - b.mean()
        verdict = stats.Decision(stats.INCONCLUSIVE, "mean difference", difference, 0, 0, p, a.size, None, p_opposite)
        return Evidence(verdict)

    return Claim(key, f"claim {key}", "synthetic", (f"{key}-a", f"{key}-b"), evaluate)


def _fetch(effects: dict[str, float], rng):
    """Synthetic runs: each variant has MAX_SEEDS values drawn once; a look at n seeds reads the
    first n, as the cache extends runs by seed blocks."""
    data = {}
    for key, effect in effects.items():
        data[f"{key}-a"] = rng.normal(effect, 1.0, MAX_SEEDS)
        data[f"{key}-b"] = rng.normal(0.0, 1.0, MAX_SEEDS)

    def fetch(names, count):
        return {name: pd.DataFrame({"late_return": data[name][:count]}) for name in names}

    return fetch


def _family(effects, rng, stages):
    claims = [_z_test_claim(key) for key in effects]
    return evaluate_family(claims, _fetch(effects, rng), stages)


@pytest.mark.parametrize("stages", [[20], [20, 40, 80]])
def test_family_wise_false_verdicts_stay_at_or_below_alpha_under_the_null(stages):
    rng = np.random.default_rng(11)
    families = 1_000
    false = 0
    for _ in range(families):
        settled = _family(dict.fromkeys("abcd", 0.0), rng, stages)
        false += any(s.verdict in (stats.SUPPORTED, stats.REFUTED) for s in settled.values())
    rate, error = false / families, math.sqrt(stats.ALPHA * (1 - stats.ALPHA) / families)
    assert rate <= stats.ALPHA + 2 * error, f"family-wise false verdict rate {rate:.3f}"


def test_power_grows_with_the_looks_and_settled_claims_stop_early():
    rng_one, rng_many = np.random.default_rng(5), np.random.default_rng(5)
    runs = 300
    one_look = sum(_family({"x": 0.45}, rng_one, [20])["x"].verdict == stats.SUPPORTED for _ in range(runs))
    looks = [_family({"x": 0.45}, rng_many, [20, 40, 80])["x"] for _ in range(runs)]
    many_looks = sum(s.verdict == stats.SUPPORTED for s in looks)
    assert many_looks > one_look + 3 * math.sqrt(runs * 0.25)
    assert {s.seeds for s in looks if s.verdict == stats.SUPPORTED} >= {40, 80}
    # A large effect settles at the first look whose level its p-value beats.
    strong = _family({"y": 3.0}, np.random.default_rng(0), [20, 40, 80])["y"]
    assert (strong.verdict, strong.look, strong.seeds) == (stats.SUPPORTED, 1, 20)


def _fixed_claim(key: str, p: float) -> Claim:
    """A claim whose p-values are the same at every look: p for it, 1 - p against it."""

    def evaluate(summaries, alpha):
        return Evidence(stats.Decision(stats.INCONCLUSIVE, "fixed", 0.0, 0.0, 0.0, p, 20, None, 1 - p))

    return Claim(key, f"claim {key}", "synthetic", (), evaluate)


def test_a_futile_claim_stops_from_half_the_seeds_and_a_promising_one_goes_on():
    flat, trend = _fixed_claim("flat", 0.4), _fixed_claim("trend", 0.15)
    settled = evaluate_family([flat, trend], lambda names, count: {}, [20, 40, 80])
    final_bar = stats.stage_levels([20, 40, 80])[-1] / 2
    # p = 0.4: at t = 1/4 too early to judge; at t = 1/2, z / sqrt(t) = 0.36 is far below the
    # bar's z of 2.01 (conditional power 1%).
    stopped = settled["flat"]
    assert (stopped.verdict, stopped.look, stopped.seeds) == (stats.INCONCLUSIVE, 2, 40)
    assert stopped.conditional_power == pytest.approx(stats.conditional_power(0.4, 0.5, final_bar))
    assert stopped.conditional_power < stats.FUTILITY_POWER
    # p = 0.15: the trend reaches 1.47 at t = 1/2 (conditional power 22%): it gets every look.
    went_on = settled["trend"]
    assert (went_on.verdict, went_on.look, went_on.seeds) == (stats.INCONCLUSIVE, 3, 80)
    assert went_on.conditional_power is None
    # Without the futility stop the flat claim gets every look too.
    kept = evaluate_family([flat, trend], lambda names, count: {}, [20, 40, 80], futility=False)["flat"]
    assert (kept.verdict, kept.look, kept.seeds, kept.conditional_power) == (stats.INCONCLUSIVE, 3, 80, None)
    # A p-value that could not be computed is no evidence of futility.
    unknown = evaluate_family([_fixed_claim("nan", math.nan)], lambda names, count: {}, [20, 40, 80])["nan"]
    assert (unknown.look, unknown.conditional_power) == (3, None)


def test_each_look_is_announced_with_the_claims_still_open():
    looks = []
    claims = [_fixed_claim("flat", 0.4), _fixed_claim("trend", 0.15), _fixed_claim("sure", 1e-9)]
    evaluate_family(claims, lambda names, count: {}, [20, 40, 80], on_look=lambda *look: looks.append(look))
    # "sure" settles at look 1; "flat" stops as futile at look 2; only "trend" reaches look 3.
    assert [(look, seeds, [c.key for c in open_claims]) for look, seeds, open_claims in looks] == [
        (1, 20, ["flat", "trend", "sure"]),
        (2, 40, ["flat", "trend"]),
        (3, 80, ["trend"]),
    ]


def test_futility_stops_null_claims_at_half_the_seeds_and_real_effects_rarely():
    rng = np.random.default_rng(17)
    null = [s for _ in range(300) for s in _family(dict.fromkeys("ab", 0.0), rng, [20, 40, 80]).values()]
    assert not any(s.conditional_power is not None and s.look == 1 for s in null)
    # At t = 1/2 a claim goes on when |z| >= sqrt(t) (c + Phi^-1(0.1) sqrt(1 - t)) = 0.78, so a
    # null claim (z ~ N(0, 1)) stops there with P = 2 Phi(0.78) - 1 = 0.57.
    c = scipy_stats.norm.isf(stats.stage_levels([20, 40, 80])[-1] / 2)
    bound = math.sqrt(0.5) * (c + scipy_stats.norm.ppf(stats.FUTILITY_POWER) * math.sqrt(0.5))
    expected = 2 * scipy_stats.norm.cdf(bound) - 1
    stopped = sum(s.look == 2 and s.conditional_power is not None for s in null) / len(null)
    assert abs(stopped - expected) < 4 * math.sqrt(expected * (1 - expected) / len(null))
    # A real effect (0.6 SD: z ~ N(2.68, 1) at 40 seeds, 96% power at 80) stops only below the bound.
    real = [_family({"x": 0.6}, rng, [20, 40, 80])["x"] for _ in range(300)]
    expected = scipy_stats.norm.cdf(bound - 0.6 / math.sqrt(2 / 40))
    stopped = sum(s.conditional_power is not None for s in real) / len(real)
    assert abs(stopped - expected) < 4 * math.sqrt(expected * (1 - expected) / len(real))


def test_each_look_fetches_every_open_claims_variants_at_once_first():
    calls = []
    fetch = _fetch({"x": 3.0, "y": 0.0}, np.random.default_rng(4))

    def recording(names, count):
        calls.append((tuple(names), count))
        return fetch(names, count)

    evaluate_family([_z_test_claim("x"), _z_test_claim("y")], recording, [20, 40, 80])
    assert calls[0] == (("x-a", "x-b", "y-a", "y-b"), 20)
    # x settles at the first look; the later looks fetch y's variants only, the union first.
    assert calls[3] == (("y-a", "y-b"), 40) and calls[5] == (("y-a", "y-b"), 80)


def test_a_crash_is_an_error_that_counts_as_p_one_and_never_a_verdict():
    def crashes(summaries, alpha):
        raise KeyError("late_return")

    claims = [_z_test_claim("ok"), Claim("broken", "a crash", "none", ("ok-a",), crashes)]
    settled = evaluate_family(claims, _fetch({"ok": 3.0}, np.random.default_rng(1)), [20, 40])
    assert settled["broken"].verdict == ERROR and "KeyError" in settled["broken"].error
    assert settled["broken"].look == 1 and settled["broken"].evidence is None
    ok = settled["ok"]
    assert ok.verdict == stats.SUPPORTED
    # Holm over 4 hypotheses (2 claims x 2 directions): the crash still takes its place.
    assert ok.p_adjusted == pytest.approx(min(1.0, 4 * ok.evidence.verdict.p_value))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"reason": " "}, "reason"),
        ({"reason": "x", "profiles": ()}, "profiles"),
        ({"reason": "x", "envs": "Acrobot-v1"}, "envs"),  # a string, not a tuple of env ids
    ],
)
def test_a_refutation_record_names_its_bad_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^Refutation.{field}: "):
        Refutation(**kwargs)
