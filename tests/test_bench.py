import csv
import json
from pathlib import Path

import pytest

from agents.textbook import bench


def test_flops_per_agent_step_matches_the_hand_count():
    # 2x64 MLP on CartPole: 4*64 + 64*64 + 64*2 = 4,480 multiply-adds per sample.
    macs = 4 * 64 + 64 * 64 + 64 * 2
    # article-target, batch 64: online forward + target forward + backward (2 forwards) per update,
    # about 2.3 MFLOP, plus the acting forward on one state.
    assert bench.flops_per_agent_step("article-target") == 2 * macs + 2 * macs * 64 * 4
    assert abs(bench.flops_per_agent_step("article-target") / 2.3e6 - 1) < 0.01
    # article-naive learns from one transition per update.
    assert bench.flops_per_agent_step("article-naive") == 2 * macs + 2 * macs * 1 * 4
    assert bench.flops_per_agent_step("replay-target-double") == 2 * macs + 2 * macs * 64 * 5


def test_results_are_written_as_csv_and_json(tmp_path):
    rows = [{"variant": "article-target", "implementation": "engine", "seeds": 8, "agent_steps_per_s_per_core": 1.0}]
    bench._write(tmp_path, rows, {"rows": rows})
    with open(tmp_path / "bench.csv") as handle:
        assert list(csv.DictReader(handle))[0]["seeds"] == "8"
    assert json.loads((tmp_path / "bench.json").read_text())["rows"] == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.csv", "bench.json"]


def test_the_article_loop_baseline_trains_as_the_article_does():
    """One update per env step once the deque holds a batch; example 1 learns from every step."""
    from agents.catalogue.presets import get_variant
    from agents.textbook.article_loop import article_loop

    assert article_loop(get_variant("article-target").config, 300) == 300 - 64 + 1
    assert article_loop(get_variant("article-naive").config, 100) == 100


def test_the_bench_is_product_code_without_test_imports():
    for module in ("bench.py", "article_loop.py"):
        source = Path(bench.__file__).with_name(module).read_text()
        assert "from tests" not in source and "import tests" not in source and "sys.path" not in source


def test_batch_widths_are_a_comma_separated_list_of_positive_integers(capsys):
    assert bench._seed_counts("40,160") == (40, 160)
    for bad in ("0", "4,x", "", "-8"):
        with pytest.raises(SystemExit):
            bench.main(["--seeds", bad])
        assert f"argument --seeds: {bad!r} is not positive integers" in capsys.readouterr().err


def test_variants_are_preset_names_and_an_unknown_one_is_named(capsys):
    assert bench._variant_names("article-target,article-naive") == ("article-target", "article-naive")
    with pytest.raises(SystemExit):
        bench.main(["--variants", "article-target,no-such-variant"])
    assert "no-such-variant unknown" in capsys.readouterr().err


def test_a_row_gives_the_ratio_to_the_article_loop_and_the_compile_time_apart():
    result = {"agent_steps_per_s": 600.0, "cpu_agent_steps_per_s": 1200.0, "peak_rss_mib": 10.0, "compile_s": 5.04}
    row = bench._row("article-target", bench.JAX_PEER, 4, result, {"agent_steps_per_s": 200.0}, 1e-6)
    assert row["ratio_to_article_loop"] == 3.0 and row["compile_s"] == 5.0
    assert row["share_of_arithmetic_limit"] == round(600.0 * 1e-6, 4)
    assert "compile or load, not timed" in bench._format_row(row)
    without_compile = {key: value for key, value in result.items() if key != "compile_s"}
    engine = bench._row("article-target", "engine-fast", 4, without_compile, {"agent_steps_per_s": 200.0}, 1e-6)
    assert engine["compile_s"] is None and "compile" not in bench._format_row(engine)
