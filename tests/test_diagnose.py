"""Diagnosing a user's DQN: the installed package runs from an empty directory, on an env the
user registers in their own module, and writes a report whose first screen is the diagnosis."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY_ENV = (Path(__file__).resolve().parent / "tiny_env.py").read_text()
# A user's DQN on their own env (module my_env in the working directory), ten lines of TOML.
TINY_TOML = """
name = "tiny"
env_id = "my_env:TinyChain-v0"
total_env_steps = 300
batch_size = 16
replay_capacity = 200
learning_starts = 16
target_sync_period = 20
hidden_sizes = [8]
[env]
success_threshold = 1.0
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package installed (not editable) into a folder of its own, as `pip install` would."""
    # Built from a copy of what the package is made of, so no stale build/ folder leaks in.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("ablations", "agents", "reports"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", target, source],
        check=True,
        capture_output=True,
    )
    return target


@pytest.fixture
def user_dir(tmp_path, installed, monkeypatch) -> Path:
    """An empty working directory with the user's env module and config file, the installed
    package first on the path (the clone is not importable from here)."""
    (tmp_path / "my_env.py").write_text(TINY_ENV)
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(installed))
    return tmp_path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600)


@pytest.mark.integration
def test_the_installed_suite_is_collected_from_an_empty_directory(user_dir, installed):
    article = run("-m", "pytest", "--pyargs", "ablations", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert article.returncode == 0, article.stdout + article.stderr
    assert "test_claims.py::test_claim[naive-fails]" in article.stdout
    assert "test_diagnosis" not in article.stdout
    diagnosis = run(
        "-m", "pytest", "--pyargs", "ablations", "--ablation-config=tiny.toml", "--collect-only", "-q",
        "-p", "no:cacheprovider",
    )  # fmt: skip
    assert diagnosis.returncode == 0, diagnosis.stdout + diagnosis.stderr
    collected = [line for line in diagnosis.stdout.splitlines() if "::" in line]
    assert collected[0].endswith("test_diagnosis.py::test_base_learns")
    assert "test_diagnosis.py::test_change[no-replay]" in diagnosis.stdout
    assert all("test_diagnosis.py" in line for line in collected)
    assert str(installed) in run("-c", "import ablations; print(ablations.__file__)").stdout


@pytest.mark.integration
def test_the_plugin_stays_out_of_other_pytest_sessions(user_dir):
    (user_dir / "test_other.py").write_text(
        "import sys\n\ndef test_untouched():\n    assert 'torch' not in sys.modules\n"
    )
    result = run("-m", "pytest", "test_other.py", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ablation profile" not in result.stdout
    assert not (user_dir / "ablation-results").exists()


@pytest.mark.integration
def test_diagnose_writes_a_report_whose_first_screen_is_the_diagnosis(user_dir):
    result = run("-m", "ablations", "diagnose", "tiny.toml", "--profile", "smoke", "--workers", "0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = user_dir / "diagnosis-tiny"
    assert f"diagnosis: {out / 'report.html'}" in result.stdout
    tests = pd.read_parquet(out / "tests.parquet")
    base = tests[tests["property"] == "diagnosis-base"]
    changes = tests[tests["property"] == "diagnosis"]
    meta = json.loads((out / "meta.json").read_text())
    assert len(base) == 1 and len(changes) == len(meta["diagnosis"]["rungs"]) >= 10
    assert set(changes["verdict"]) <= {"supported", "refuted", "inconclusive"}
    assert changes["p_adjusted"].notna().all()
    outcomes = json.loads(base.iloc[0]["details"])["outcomes"]
    assert sum(outcomes.values()) == 3
    # The runs' env profile carries the config file's success threshold.
    assert meta["env_profile"]["success_threshold"] == 1.0
    assert {v["env_profile"]["success_threshold"] for v in meta["variants"].values()} == {1.0}
    html = (out / "report.html").read_text()
    assert html.index('id="diagnosis"') < html.index('id="properties"')
    assert "Diagnosis of tiny" in html and 'id="verdicts"' not in html
    listed = html[html.index('id="diagnosis-changes"') :]
    assert listed[: listed.index("</ol>")].count("late return (IQM)") == len(changes)
    # The named causes, most likely first, printed and first on the report's screen.
    assert [line for line in result.stdout.splitlines() if line.startswith("cause: ")]
    assert html.index('id="cause"') < html.index('id="changes"')
    assert 'id="diagnosis-bugs"' in html and "Bug catalogue." in html


@pytest.mark.integration
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "no such config file"),
        ("gamma = 2.0\n", "gamma=2.0 is invalid"),
        ('env_id = "NoSuchEnv-v0"\n', "not a registered gymnasium environment"),
        ('env_id = "Pendulum-v1"\n', "Pendulum-v1"),
    ],
)
def test_bad_input_is_one_line_before_anything_trains(user_dir, text, message):
    if text is not None:
        (user_dir / "bad.toml").write_text(text)
    result = run("-m", "ablations", "diagnose", "bad.toml", "--workers", "0")
    assert result.returncode != 0
    errors = [line for line in (result.stderr + result.stdout).splitlines() if message in line]
    assert errors, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (user_dir / ".ablation-cache").exists()


def test_diagnose_says_what_it_will_train_before_it_trains():
    from ablations.diagnosis.command import build_parser, plan
    from agents.configfile import load_config_file

    example = ROOT / "examples" / "article-example-1.toml"
    loaded = load_config_file(example)
    # The README's example diagnosis at the standard profile: its own 50k steps x 20 seeds; the base
    # with the 3 triage rungs first (4 x 20 x 50k agent-steps), the rest of the 14 rungs after them.
    arguments = ["diagnose", str(example), "--profile", "standard", "--max-seeds", "40", "--cache", "c"]
    standard = plan(loaded, build_parser().parse_args(arguments)).splitlines()
    assert standard[0] == (
        "diagnose: article-example-1 on CartPole-v1, profile standard: your DQN at 50,000 env steps x 20 seeds, "
        "with the 3 one-knob changes its lint and symptoms point at first (about 4,000,000 agent-steps), then the "
        "other 11 of the ladder's 14 only if none of those settles (--thorough: always); unsettled changes get "
        "seeds on demand up to 40; runs already in c are not trained again"
    )
    assert standard[1].startswith("families: flagged ") and "(Holm within each)" in standard[1]
    # The default, quick: its 50k steps are beyond what the first screen affords, said first; the
    # prefix it diagnoses (30k: 1,080,000 agent-steps over 9 seeds x 4 variants) is below
    # CartPole-v1's typical 50k, so the sized base also gets the steps-x4 rung: 15 changes.
    quick = plan(loaded, build_parser().parse_args(["diagnose", str(example)])).splitlines()
    assert quick[0].startswith("budget: your 50,000 env steps are beyond what the quick profile affords (30,000")
    assert "profile quick: your DQN at 30,000 env steps x 9 seeds" in quick[1]
    assert "the other 12 of the ladder's 15" in quick[1] and "seeds on demand up to 18" in quick[1]
    # The smoke profile caps the file's steps at 10,000 and takes 3 seeds.
    args = build_parser().parse_args(["diagnose", str(example), "--profile", "smoke"])
    assert "your DQN at 10,000 env steps x 3 seeds" in plan(loaded, args)
