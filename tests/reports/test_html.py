import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from reports.render.html import build_report, look_cell, reading

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def report(results_dir, tmp_path):
    return build_report(results_dir, tmp_path / "report.html")


def test_report_is_self_contained_and_escapes_result_text(report):
    html = report.read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "improves on the &lt;naive&gt; agent &amp; more." in html
    assert 'id="claim-ledger"' in html
    # Verdicts come before the tables and figures.
    assert html.index('id="verdicts"') < html.index('id="variant-summary"') < html.index('id="figures"')
    # Offline: no external resources, every image is embedded.
    assert not re.search(r'(src|href)="https?://', html)
    assert html.count('src="data:image/png;base64,') >= 4
    assert "About 17 seeds per variant would settle it." in html
    # A crashed claim reads as a crash, never as a verdict; checks read "check ...", never "nan".
    assert "The test crashed before it could reach a verdict: KeyError" in html
    assert "check skipped" in html and ">nan<" not in html
    # The literature stands apart from the article's claims, with its source and a reading.
    literature = html[html.index('id="literature"') : html.index('id="properties"')]
    assert "Mnih et al. (2015), Extended Data Table 3" in literature and "In 4 of the 5 games" in literature
    assert "Holds here too (CartPole-v1, 4 seeds per cell x 1,000 steps), at a much smaller scale" in literature


@pytest.mark.integration
def test_command_line_entry_point(results_dir, tmp_path):
    out = tmp_path / "cli.html"
    done = subprocess.run(
        [sys.executable, "-m", "reports", str(results_dir), "-o", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert out.is_file() and (results_dir / "tables" / "claim_ledger.csv").is_file()
    bad = subprocess.run([sys.executable, "-m", "reports", str(tmp_path / "missing")], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a results folder" in bad.stderr


@pytest.mark.integration
def test_report_renders_in_headless_chromium(report, tmp_path):
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    errors = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.alt, i.complete, i.naturalWidth])")
        assert len(images) >= 4
        assert all(complete and width > 0 for _, complete, width in images), images
        assert page.locator("#claim-ledger tbody tr").count() == 2
        assert "Experience replay improves" in page.locator("#claim-ledger").inner_text()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_the_report_is_readable_like_any_written_file(report):
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert report.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_futility_stop_reads_as_such_in_the_ledger():
    row = pd.Series(
        {
            "verdict": "inconclusive",
            "statistic": "P(X > Y)",
            "effect_size": 0.51,
            "ci_low": 0.4,
            "ci_high": 0.62,
            "p_value": 0.42,
            "p_adjusted": 1.0,
            "seeds_used": 40,
            "seeds_needed": 900,
            "look": 2,
            "looks": 3,
            "look_level": 0.0056,
            "conditional_power": 0.012,
        }
    )
    assert reading(row).startswith("Stopped for futility after 40 seeds per variant: P(X > Y) = 0.51")
    assert "settle it with probability 0.012" in reading(row) and "900" not in reading(row)
    assert look_cell(row) == "2 of 3 (0.0056), futile (conditional power 0.012)"
    assert "futile" not in look_cell(row.drop("conditional_power"))


def test_machine_paths_are_not_part_of_a_report(tmp_path):
    from reports.render.html import portable_paths

    results = tmp_path / "runs" / "diag"
    line = f"pytest --ablation-config=/home/ada/dqn/my.toml --ablation-out={results} -n auto"
    assert portable_paths(line, results) == "pytest --ablation-config=dqn/my.toml --ablation-out=diag -n auto"
    assert portable_paths("no paths here, 1/2 of them", results) == "no paths here, 1/2 of them"
