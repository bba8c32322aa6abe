import json

import numpy as np
import pandas as pd
import pytest

from agents.catalogue.presets import FACTORIAL_KNOBS, factorial_variant, get_variant
from reports.analysis import factorial

# Late returns (the last of five checkpoints) per seed, chosen for exact answers.
LATE = {"article-naive": [9.0, 10.0, 11.0, 300.0], "article-target": [100.0, 200.0, 300.0, 500.0]}


def _runs() -> pd.DataFrame:
    rows = []
    for variant, finals in LATE.items():
        for seed, final in enumerate(finals):
            for i, step in enumerate(range(200, 1001, 200)):
                rows.append(
                    {
                        "variant": variant,
                        "seed": seed,
                        "env_step": step,
                        "gradient_updates": step - 64,
                        "eval_return": final if i == 4 else 20.0 * (i + 1),
                        "max_abs_q": 1e6 if variant == "article-naive" else 50.0 + i,
                        "mean_q": 1.0,
                        "td_target_var": 2.0 if variant == "article-naive" else 1.0,
                        "td_error_var": 1.0,
                        "state_autocorrelation": 0.9 if variant == "article-naive" else 0.01,
                        "mean_sample_age": 0.0 if variant == "article-naive" else step / 2,
                        "replay_fill": np.nan if variant == "article-naive" else step / 10_000,
                        "diverged": False,
                        "diverged_step": -1,
                    }
                )
    return pd.DataFrame(rows)


def _tests() -> pd.DataFrame:
    rows = [
        {
            "node_id": "ablations/test_claims.py::test_replay_improves_on_naive",
            "test": "test_replay_improves_on_naive",
            "property": "claims",
            "claim": "Experience replay improves on the <naive> agent & more.",
            "variants": "article-naive,article-target",
            "statistic": "P(X > Y)",
            "effect_size": 0.75,
            "ci_low": 0.5,
            "ci_high": 1.0,
            "p_value": 0.1,
            "p_adjusted": 0.3,
            "n": 4,
            "verdict": "inconclusive",
            "seeds_needed": 17,
            "outcome": "skipped",
            "duration_s": 0.5,
            "details": json.dumps(
                {"metric": "late greedy return", "look": 1, "looks": 1, "seeds_used": 4, "look_level": 0.05}
            ),
        },
        {
            "node_id": "ablations/test_literature.py::test_literature_claim[mnih]",
            "test": "test_literature_claim[mnih]",
            "property": "literature",
            "claim": "Removing replay hurts more than removing the target network.",
            "variants": "article-naive,article-target",
            "statistic": "late return: (no target network) - (no replay)",
            "effect_size": 120.0,
            "ci_low": 80.0,
            "ci_high": 160.0,
            "p_value": 0.001,
            "p_adjusted": 0.004,
            "n": 4,
            "verdict": "supported",
            "seeds_needed": None,
            "outcome": "passed",
            "duration_s": 0.5,
            "details": json.dumps(
                {
                    "metric": "late return contrast",
                    "seeds_used": 4,
                    "claim_order": 0,
                    "source": "Mnih et al. (2015), Extended Data Table 3",
                    "paper": "In 4 of the 5 games, no replay scored lower than no target network.",
                    "setting": "Atari 2600 games",
                }
            ),
        },
        {
            # A claim whose test crashed before it recorded anything: an error row, not a verdict.
            "node_id": "ablations/test_claims.py::test_claim[crashing]",
            "test": "test_claim[crashing]",
            "property": "claims",
            "claim": "test_claim[crashing]",
            "variants": None,
            "statistic": None,
            "effect_size": None,
            "ci_low": None,
            "ci_high": None,
            "p_value": None,
            "p_adjusted": None,
            "n": None,
            "verdict": "error",
            "seeds_needed": None,
            "outcome": "failed",
            "duration_s": 0.1,
            "details": json.dumps({"error": "KeyError: 'late_return'"}),
        },
        {
            "node_id": "ablations/test_convergence.py::test_soft_divergence[article-naive]",
            "test": "test_soft_divergence[article-naive]",
            "property": "soft_divergence",
            "claim": None,
            "variants": "article-naive",
            "statistic": "rate",
            "effect_size": 1.0,
            "ci_low": 0.51,
            "ci_high": 1.0,
            "p_value": 0.0625,
            "p_adjusted": None,
            "n": 4,
            "verdict": "inconclusive",
            "seeds_needed": 5,
            "outcome": "skipped",
            "duration_s": 0.1,
            "details": "{}",
        },
    ]
    return pd.DataFrame(rows)


def _meta() -> dict:
    return {
        "profile": "hand-made",
        "seeds": [0, 1, 2, 3],
        "env_steps": 1000,
        "env_id": "CartPole-v1",
        "command_line": "pytest ablations <script>alert(1)</script>",
        "git_commit": "abc123",
        "wall_time_s": 1.5,
        "xdist_workers": 2,
        "package_versions": {"torch": "2.13.0"},
        "variants": {v: {"config": get_variant(v).config.to_dict()} for v in LATE},
    }


@pytest.fixture
def results_dir(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    _runs().to_parquet(folder / "runs.parquet", index=False)
    _tests().to_parquet(folder / "tests.parquet", index=False)
    pd.DataFrame({"variant": [], "seed": []}).to_parquet(folder / "episodes.parquet", index=False)
    (folder / "meta.json").write_text(json.dumps(_meta()))
    return folder


MASK, REPLAY = FACTORIAL_KNOBS.index("terminal_masking"), FACTORIAL_KNOBS.index("replay")
COMMON_SEEDS = 4


def _cell_return(levels: tuple[bool, ...]) -> float:
    """Late return of every common seed of a cell: masking +100, replay +30, both together +10 more."""
    return 100.0 * levels[MASK] + 30.0 * levels[REPLAY] + 10.0 * levels[MASK] * levels[REPLAY]


def _factorial_folder(folder, cells, extra_seed_cells, recorded_n=20, env_id="CartPole-v1"):
    """A results folder with the given cells at seeds 0-3; cells in extra_seed_cells also hold
    seeds 4 and 5 at a return that would move every estimate if they were counted."""
    rows = []
    for levels in factorial.cells(len(FACTORIAL_KNOBS)):
        variant = factorial_variant(*levels)
        if variant not in cells:
            continue
        seeds = range(COMMON_SEEDS + 2) if variant in extra_seed_cells else range(COMMON_SEEDS)
        for seed in seeds:
            value = _cell_return(levels) if seed < COMMON_SEEDS else 10_000.0
            for step in range(200, 1001, 200):
                rows.append(
                    {
                        "variant": variant,
                        "seed": seed,
                        "env_step": step,
                        "eval_return": value,
                        "max_abs_q": 1.0,
                        "td_target_var": 1.0,
                        "td_error_var": 1.0,
                        "state_autocorrelation": 0.5,
                        "diverged": False,
                        "diverged_step": -1,
                    }
                )
    recorded = {
        "late_return": [
            {"kind": "gap", "name": "all on - all off", "estimate": 416.0, "ci_low": 402.0, "ci_high": 428.0}
        ]
    }
    tests = pd.DataFrame(
        [
            {
                "node_id": "ablations/test_claims.py::test_claim[failure-is-missing-stabilisers]",
                "test": "test_claim[failure-is-missing-stabilisers]",
                "property": "claims",
                "claim": "The failure is the missing stabilisers.",
                "variants": ",".join(factorial.ARTICLE_CELLS),
                "statistic": "phi(replay) + phi(target) - phi(mask)",
                "effect_size": -274.0,
                "ci_low": -298.0,
                "ci_high": -249.0,
                "p_value": 1.0,
                "p_adjusted": 1.0,
                "seeds_needed": None,
                "duration_s": 1.0,
                "verdict": "refuted",
                "outcome": "xfailed",
                "n": recorded_n,
                "details": json.dumps({"attribution": recorded}),
            }
        ]
    )
    folder.mkdir()
    pd.DataFrame(rows).to_parquet(folder / "runs.parquet", index=False)
    tests.to_parquet(folder / "tests.parquet", index=False)
    (folder / "meta.json").write_text(
        json.dumps(
            {
                "profile": "hand-made",
                "env_id": env_id,
                "seeds": [0, 1, 2, 3, 4, 5],
                "env_steps": 1000,
                "command_line": "pytest ablations",
            }
        )
    )
    return folder


@pytest.fixture
def factorial_results(tmp_path):
    """make(cells, extra_seed_cells, recorded_n=20, env_id="CartPole-v1") -> a results folder
    of the article's factorial (see _factorial_folder); each call makes a new folder."""
    made = []

    def make(cells, extra_seed_cells, recorded_n=20, env_id="CartPole-v1"):
        made.append(None)
        return _factorial_folder(tmp_path / f"factorial-{len(made)}", cells, extra_seed_cells, recorded_n, env_id)

    return make
