"""The bug catalogue's claims (agents/catalogue/bugs.py): "bug X shows its declared symptom against its
bug-free twin", one family of their own settled like the article's claims (Holm over both
directions, seeds on demand), and the data of the recognition check."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablations.claims.procedure import Claim, Evidence, Summaries
from agents.catalogue.bugs import CATALOGUE, FEATURES, UP, Bug
from agents.catalogue.presets import BUG_VARIANTS
from reports.analysis import stats

# The recognition check's bug-free class: example 3 with terminal masking and time-limit
# bootstrapping, the variant with none of the catalogue's bugs.
BUG_FREE = "cell-m1-d0-r1-t1"


def _shows_symptom(bug: Bug):
    feature, direction = bug.primary
    buggy, twin = BUG_VARIANTS[bug.name], bug.twin

    def evaluate(s: Summaries, alpha: float) -> Evidence:
        x, y = (s[name][feature].to_numpy(dtype=float) for name in (buggy, twin))
        x, y = x[np.isfinite(x)], y[np.isfinite(y)]
        verdict = stats.compare_greater(x, y, alpha) if direction == UP else stats.compare_greater(y, x, alpha)
        medians = {
            name: {f: float(np.nanmedian(s[name][f].to_numpy(dtype=float))) for f, _ in bug.signature}
            for name in (buggy, twin)
        }
        return Evidence(verdict, {"bug": bug.name, "feature": feature, "median_signature": medians})

    return evaluate


BUG_CLAIMS: dict[str, Claim] = {
    bug.name: Claim(
        bug.name,
        f"Bug {bug.name}: {bug.symptom}.",
        f"{bug.primary[0]} {'higher' if bug.primary[1] == UP else 'lower'} than its twin {bug.twin} "
        f"(P(symptom), Mann-Whitney)",
        (BUG_VARIANTS[bug.name], bug.twin),
        _shows_symptom(bug),
        source=bug.seen_in,
    )
    for bug in CATALOGUE
}
RECOGNITION_CLASSES = {**{BUG_VARIANTS[bug.name]: bug.name for bug in CATALOGUE}, BUG_FREE: "bug-free"}


def recognition_frame(summaries: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per seed of every catalogue variant and the bug-free one: signature features and
    the label (the bug injected, or bug-free)."""
    parts = []
    for variant, label in RECOGNITION_CLASSES.items():
        part = summaries[variant].reindex(columns=list(FEATURES)).copy()
        part["label"], part["variant"] = label, variant
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
