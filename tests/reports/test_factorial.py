"""The factorial attribution on tiny exact cases."""

import itertools

import numpy as np
import pytest

from reports.analysis import factorial as F


def _values(function, k=3, seeds=4):
    return {cell: np.full(seeds, float(function(*cell))) for cell in F.cells(k)}


def test_additive_effects_are_recovered_exactly():
    table = F.attribution_table(_values(lambda a, b, c: 10 * a + 5 * b), ["a", "b", "c"]).set_index(["kind", "name"])
    for knob, effect in (("a", 10), ("b", 5), ("c", 0)):
        assert table.loc[("main effect", knob), "estimate"] == pytest.approx(effect)
        assert table.loc[("shapley", knob), "estimate"] == pytest.approx(effect)
    assert table.loc[("gap", "all on - all off"), "estimate"] == pytest.approx(15)
    assert table.loc[("interaction", "a x b"), "estimate"] == pytest.approx(0)


def test_an_interaction_is_shared_equally_by_shapley_and_not_by_the_order_of_switching():
    # Only both together pay: any one-at-a-time path credits the whole 12 to whichever is second.
    table = F.attribution_table(_values(lambda a, b, c: 12 * a * b), ["a", "b", "c"]).set_index(["kind", "name"])
    assert table.loc[("shapley", "a"), "estimate"] == pytest.approx(6)
    assert table.loc[("shapley", "b"), "estimate"] == pytest.approx(6)
    assert table.loc[("shapley", "a"), "share"] == pytest.approx(0.5)
    assert table.loc[("interaction", "a x b"), "estimate"] == pytest.approx(12)
    assert table.loc[("main effect", "a"), "estimate"] == pytest.approx(6)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_shapley_values_add_up_to_the_gap_for_any_cell_means(k):
    rng = np.random.default_rng(k)
    means = rng.normal(0, 10, 2**k)
    total = sum(F.shapley_weights(k, knob) @ means for knob in range(k))
    assert total == pytest.approx(means[-1] - means[0])
    # The weights also agree with the permutation definition of the Shapley value.
    index = {cell: i for i, cell in enumerate(F.cells(k))}
    for knob in range(k):
        contributions = []
        for order in itertools.permutations(range(k)):
            on = [False] * k
            for j in order:
                before = means[index[tuple(on)]]
                on[j] = True
                if j == knob:
                    contributions.append(means[index[tuple(on)]] - before)
        assert F.shapley_weights(k, knob) @ means == pytest.approx(np.mean(contributions))


def test_bootstrap_intervals_are_stratified_and_p_values_follow_the_sign():
    rng = np.random.default_rng(0)
    values = {cell: rng.normal(5 * cell[0], 1, 10) for cell in F.cells(2)}
    table = F.attribution_table(values, ["a", "b"]).set_index(["kind", "name"])
    low, high = table.loc[("main effect", "a"), ["ci_low", "ci_high"]]
    assert low < 5 < high and low > 3
    assert F.bootstrap_p_greater(values, 2, F.main_effect_weights(2, 0)) < 0.01
    assert F.bootstrap_p_greater(values, 2, -F.main_effect_weights(2, 0)) > 0.99
