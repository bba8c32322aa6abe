"""Recognising a bug from a run's diagnostics: a nearest-centroid rule over standardised
signature features, measured honestly by leave-one-seed-out accuracy against chance.

Written by hand (a dozen lines of numpy) rather than with a classifier library: the rule is the
simplest that uses the declared signatures' features, and its every step is visible.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def standardise(frame: pd.DataFrame, features: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature matrix with NaN replaced by the column median, and the columns' mean and spread."""
    x = frame[features].to_numpy(dtype=float)
    medians = np.nanmedian(x, axis=0)
    x = np.where(np.isfinite(x), x, np.where(np.isfinite(medians), medians, 0.0))
    mean, spread = x.mean(0), x.std(0)
    return x, mean, np.where(spread > 0, spread, 1.0)


def nearest_centroid_scores(train: np.ndarray, labels: np.ndarray, query: np.ndarray) -> dict[str, float]:
    """Distance of the query to each label's centroid (standardised units), smallest first."""
    distances = {
        str(label): float(np.linalg.norm(query - train[labels == label].mean(0))) for label in np.unique(labels)
    }
    return dict(sorted(distances.items(), key=lambda item: item[1]))


def leave_one_seed_out(frame: pd.DataFrame, features: list[str], label: str = "label") -> pd.DataFrame:
    """Every row classified by the centroids of all other rows (standardised on them too):
    one row per (row, true label, predicted label)."""
    x = frame[features].to_numpy(dtype=float)
    labels = frame[label].to_numpy()
    rows = []
    for i in range(len(frame)):
        keep = np.arange(len(frame)) != i
        train, mean, spread = standardise(frame.iloc[keep], features)
        query = np.where(np.isfinite(x[i]), x[i], mean)
        scores = nearest_centroid_scores((train - mean) / spread, labels[keep], (query - mean) / spread)
        rows.append({"true": labels[i], "predicted": next(iter(scores)), "distance": next(iter(scores.values()))})
    return pd.DataFrame(rows)


def accuracy_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per true label: seeds, recognised share, chance (1 / number of labels) and the one-sided
    binomial p-value of doing better than chance."""
    labels = sorted(predictions["true"].unique())
    chance = 1.0 / len(labels)
    rows = []
    for label in labels + ["all"]:
        part = predictions if label == "all" else predictions[predictions["true"] == label]
        hits = int((part["true"] == part["predicted"]).sum())
        p = float(stats.binomtest(hits, len(part), chance, alternative="greater").pvalue)
        share = hits / len(part)
        rows.append({"label": label, "seeds": len(part), "recognised": share, "chance": chance, "p_value": p})
    return pd.DataFrame(rows)
