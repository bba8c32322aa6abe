"""Nearest-centroid bug recognition on tiny exact cases."""

import numpy as np
import pandas as pd

from reports.analysis.recognition import accuracy_table, leave_one_seed_out, nearest_centroid_scores


def test_nearest_centroid_ranks_by_distance():
    train = np.array([[0.0, 0.0], [0.0, 2.0], [10.0, 0.0], [10.0, 2.0]])
    scores = nearest_centroid_scores(train, np.array(["a", "a", "b", "b"]), np.array([9.0, 1.0]))
    assert list(scores) == ["b", "a"] and scores["b"] == 1.0 and scores["a"] == 9.0


def test_separated_labels_are_all_recognised_and_identical_ones_at_chance():
    rng = np.random.default_rng(0)
    separated = pd.DataFrame(
        {"f": np.r_[rng.normal(0, 0.1, 10), rng.normal(5, 0.1, 10)], "label": ["a"] * 10 + ["b"] * 10}
    )
    table = accuracy_table(leave_one_seed_out(separated, ["f"])).set_index("label")
    assert table.loc["all", "recognised"] == 1.0 and table.loc["all", "p_value"] < 1e-5
    assert table.loc["all", "chance"] == 0.5
    same = pd.DataFrame({"f": rng.normal(0, 1, 40), "label": ["a", "b"] * 20})
    assert accuracy_table(leave_one_seed_out(same, ["f"])).set_index("label").loc["all", "p_value"] > 0.05
