import subprocess
import sys

from agents.cli import main
from agents.presets import VARIANTS
from agents.results import RunResult


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


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "agents", "variants"], capture_output=True, text=True, check=True)
    assert "article-naive" in out.stdout
