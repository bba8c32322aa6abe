import subprocess
import sys
from pathlib import Path

import pytest

from agents.catalogue.presets import VARIANTS
from agents.cli import main
from agents.results import RunResult

ROOT = Path(__file__).resolve().parents[1]


def test_variants_lists_every_preset_with_its_summary(capsys):
    assert main(["variants"]) == 0
    out = capsys.readouterr().out
    for name, variant in VARIANTS.items():
        assert name in out and variant.summary in out


def test_train_prints_one_line_per_seed_and_saves(tmp_path, capsys):
    code = main(["train", "--variant", "article-target", "--seeds", "0-2", "--steps", "300", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("article-target seed ") for line in out.splitlines()) == 3
    (saved,) = tmp_path.iterdir()
    assert RunResult.load(saved).seeds == [0, 1, 2]


def test_bad_arguments_give_a_clear_error(capsys):
    assert main(["train", "--variant", "nope"]) == 2
    assert "variant='nope' is invalid" in capsys.readouterr().err
    assert main(["train", "--variant", "article-naive", "--seeds", "3-1"]) == 2
    assert "seeds='3-1' is invalid" in capsys.readouterr().err
    assert main(["train", "--variant", "article-naive", "--env", "Pendulum-v1", "--steps", "5"]) == 2
    assert "env_id='Pendulum-v1' is invalid" in capsys.readouterr().err


@pytest.mark.integration
def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "agents", "variants"], capture_output=True, text=True, check=True)
    assert "article-naive" in out.stdout


def test_an_unusable_output_folder_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for bad in ("/proc/forbidden", str(blocker / "runs")):
        assert main(["train", "--variant", "article-target", "--seeds", "0", "--steps", "100", "--out", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --out={bad!r} is invalid") and err.count("\n") == 1, err


def test_a_write_that_fails_after_training_keeps_the_run(tmp_path, capsys, monkeypatch):
    def refuse(self, directory):
        raise PermissionError(13, "Permission denied")

    original = RunResult.save
    monkeypatch.setattr(
        RunResult, "save", lambda self, d: refuse(self, d) if str(tmp_path) in str(d) else original(self, d)
    )
    assert main(["train", "--variant", "article-target", "--seeds", "0", "--steps", "100", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    kept = err.rsplit(": ", 1)[-1].strip()
    assert "the run is kept instead" in err and RunResult.load(kept).seeds == [0]


def test_bugs_lists_the_catalogue(capsys):
    from agents.catalogue.bugs import CATALOGUE

    assert main(["bugs"]) == 0
    out = capsys.readouterr().out
    assert len(CATALOGUE) >= 8
    for bug in CATALOGUE:
        assert bug.name in out and bug.seen_in in out and bug.symptom in out


def test_one_command_line_lists_every_subcommand(capsys):
    from ablations.cli import COMMANDS, main

    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    expected = {"train", "import", "lint", "diagnose", "probe", "report", "known-causes", "bench", "variants", "bugs"}
    assert expected <= set(COMMANDS)
    assert all(f"  {name} " in listed for name in COMMANDS)
    assert main(["no-such-command"]) == 2
    assert "unknown command 'no-such-command'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["train", "lint", "diagnose", "report", "known-causes", "bench", "variants"])
def test_each_subcommand_answers_help_under_its_own_name(name, capsys):
    from ablations.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    assert "dqn-ablations" in capsys.readouterr().out


ALIASES = [["agents", "variants"], ["agents.bench", "--help"], ["ablations.known_causes", "--help"],
           ["reports", "--help"], ["ablations", "variants"]]  # fmt: skip


@pytest.mark.parametrize("alias", ALIASES)
def test_the_old_entry_points_are_aliases(alias):
    out = subprocess.run([sys.executable, "-m", *alias], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_importing_the_main_modules_runs_no_command():
    # A child that multiprocessing spawns (bench, path-equivalence) imports the parent's main
    # module as __mp_main__: running the command there again broke `python -m ablations bench`.
    import importlib

    for name in ("ablations.__main__", "agents.__main__"):
        importlib.import_module(name)
