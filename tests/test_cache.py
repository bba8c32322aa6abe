"""The run cache's seed blocks: more seeds extend a cached run without retraining the old ones."""

from pathlib import Path

import pandas as pd

from ablations.runs.cache import BLOCK_SEEDS, RunCache
from ablations.runs.local import batches, deal
from ablations.settings import AblationSettings
from agents.catalogue.presets import get_variant
from agents.engine.loop import train
from agents.results import RunResult


def _settings(
    tmp_path: Path, seeds: int = 2, max_seeds: int | None = None, max_batch: int | None = None
) -> AblationSettings:
    return AblationSettings(
        profile="test",
        seeds=tuple(range(seeds)),
        env_steps=300,
        env_id="CartPole-v1",
        out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        rerun=False,
        write_report=False,
        session_id="s",
        max_seeds=max_seeds,
        max_batch=max_batch,
    )


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["seed", "env_step"], kind="stable", ignore_index=True)


def test_a_run_over_more_seeds_is_its_blocks_side_by_side_and_equals_training_them_at_once(tmp_path):
    settings = _settings(tmp_path, max_seeds=8)
    assert settings.looks == [2, 4, 8]
    cache = RunCache(settings)
    variant = get_variant("article-target")
    assert cache.blocks(8) == [(0, 1), (2, 3), (4, 5, 6, 7)]
    base = cache.get(variant)
    extended = cache.get(variant, 4)
    assert cache.trained_here == ["article-target", "article-target"]  # two blocks, the first not retrained
    assert extended.seeds == [0, 1, 2, 3] and len(extended.meta["cache_paths"]) == 2
    pd.testing.assert_frame_equal(extended.checkpoints[extended.checkpoints["seed"] < 2], base.checkpoints)
    at_once = RunResult.from_record("article-target", train(settings.configure(variant.config), [0, 1, 2, 3]))
    # Row order differs (block by block vs checkpoint by checkpoint); the results folder sorts.
    pd.testing.assert_frame_equal(_sorted(extended.checkpoints), _sorted(at_once.checkpoints))
    pd.testing.assert_frame_equal(_sorted(extended.episodes), _sorted(at_once.episodes))
    # A new process reads both blocks back from disk and trains nothing.
    again = RunCache(settings)
    pd.testing.assert_frame_equal(again.get(variant, 4).checkpoints, extended.checkpoints)
    assert again.trained_here == []


def test_prefetch_trains_families_together_and_this_workers_share_first(tmp_path):
    names = ["article-naive", "naive-masked", "target-only", "article-replay"]
    cache = RunCache(_settings(tmp_path))
    # Four jobs of equal cost deal out as worker 0 [naive, target-only] and worker 1 [masked,
    # article-replay]. Worker 1 trains its share first, family by family, then (alone here) the rest.
    cache.prefetch(names, None, worker=1, workers=2)
    assert cache.trained_here[:2] == ["naive-masked", "article-replay"]
    assert sorted(cache.trained_here) == sorted(names)
    # One worker: the three no-replay variants train as one batch of 6 seeds, stored apart.
    together = RunCache(_settings(tmp_path / "one"))
    together.prefetch(names, None)
    metas = {name: together.get(get_variant(name)).meta for name in names}
    assert [metas[n]["family_seeds"] for n in names] == [6, 6, 6, 2]
    alone = RunCache(_settings(tmp_path / "alone"))
    for name in names:
        pd.testing.assert_frame_equal(
            alone.get(get_variant(name)).checkpoints, together.get(get_variant(name)).checkpoints
        )


def test_blocks_are_cut_at_block_seeds_the_unit_the_cache_stores_and_ray_distributes(tmp_path):
    cache = RunCache(_settings(tmp_path, seeds=45, max_seeds=100))
    assert BLOCK_SEEDS == 20 and cache.settings.looks == [45, 90, 100]
    ranges = [(block[0], block[-1]) for block in cache.blocks(100)]
    assert ranges == [(0, 19), (20, 39), (40, 44), (45, 64), (65, 84), (85, 89), (90, 99)]
    assert [b[-1] for b in cache.blocks()] == [19, 39, 44]


def test_deal_gives_the_largest_jobs_first_to_the_least_loaded_worker():
    assert deal([10, 1, 1], 2) == [[0], [1, 2]]
    assert deal([5, 5, 5, 5], 2) == [[0, 2], [1, 3]]
    # Two one-member families no longer both land on worker 0.
    assert deal([40, 40], 2) == [[0], [1]]
    assert deal([3, 3], 1) == [[0, 1]] and deal([], 2) == [[], []]
    assert deal([1, 2, 3], 4) == [[2], [1], [0], []]


def test_batches_cut_consecutive_jobs_at_the_cap_and_never_split_a_block():
    assert batches([20, 20, 20, 20], None) == [[0, 1, 2, 3]] and batches([], None) == [] == batches([], 40)
    assert batches([20, 20, 20, 20], 40) == [[0, 1], [2, 3]]
    assert batches([20, 20, 20], 50) == [[0, 1], [2]]
    assert batches([5, 20, 5, 5], 10) == [[0], [1], [2, 3]]  # a block over the cap trains alone
    assert batches([3, 3], 1) == [[0], [1]]


def test_a_capped_batch_writes_its_entries_before_the_next_one_trains_and_results_do_not_change(tmp_path):
    names = ["article-naive", "naive-masked", "target-only"]  # one family, 2 seeds each
    capped = RunCache(_settings(tmp_path / "capped", max_batch=4))
    trained: list[list[str]] = []
    train_batch = capped._train_batch

    def spy(jobs):
        # Every earlier batch's entries are on disk when the next batch starts.
        assert all(capped._cached(v, b) is not None for batch in trained for v, b in batch)
        trained.append([(v, b) for v, b in jobs])
        return train_batch(jobs)

    capped._train_batch = spy
    capped.prefetch(names, None)
    assert [[v.name for v, _ in batch] for batch in trained] == [["article-naive", "naive-masked"], ["target-only"]]
    assert [capped.get(get_variant(n)).meta["family_seeds"] for n in names] == [4, 4, 2]
    whole = RunCache(_settings(tmp_path / "whole"))
    whole.prefetch(names, None)
    for name in names:
        variant = get_variant(name)
        pd.testing.assert_frame_equal(capped.get(variant).checkpoints, whole.get(variant).checkpoints)


def test_the_engine_path_is_part_of_the_key(tmp_path):
    import dataclasses

    from agents.catalogue.presets import get_variant

    variant = get_variant("article-target")
    exact = RunCache(_settings(tmp_path)).key(variant, (0,))
    fused = RunCache(dataclasses.replace(_settings(tmp_path), engine_path="fused")).key(variant, (0,))
    assert fused != exact
