"""The cache key is the code that trains: the engine folder, the three modules it may read, and
the keyed libraries. The boundary is explicit and checked here."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agents.results import ENGINE_READS, PACKAGE_DIR, code_digest, engine_files, imported_modules, library_versions

LIBRARIES = {"torch": "2.13.0+cpu", "numpy": "2.4.6", "gymnasium": "1.4.0", "box2d": None, "blas": "mkl"}
ALLOWED = {"agents", *(f"agents.{name.removesuffix('.py')}" for name in ENGINE_READS if name != "__init__.py")}


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    copy = tmp_path_factory.mktemp("key") / "agents"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _edited_digest(package_copy, relative: str) -> tuple[str, str]:
    """The key before and while `relative` carries one extra comment line."""
    before = code_digest(package_copy, LIBRARIES)
    path = package_copy / relative
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# an edit\n")
        return before, code_digest(package_copy, LIBRARIES)
    finally:
        path.write_bytes(original)


def test_imports_are_read_wherever_they_stand():
    source = (
        "import agents.engine.networks\n"
        "from agents.engine.replay import ReplayBuffer\n"
        "from agents import config\n"
        "import numpy\n"
        "def f():\n    from agents.catalogue.bugs import CATALOGUE\n"
        "if TYPE_CHECKING:\n    from agents.engine.targets import T\n"
    )
    assert imported_modules(source, "agents") == {
        "agents.engine.networks",
        "agents.engine.replay",
        "agents",
        "agents.catalogue.bugs",
        "agents.engine.targets",
    }


@pytest.mark.parametrize("relative", engine_files())
def test_the_engine_imports_nothing_else_from_agents(relative):
    imported = imported_modules((PACKAGE_DIR / relative).read_text(encoding="utf-8"), "agents")
    outside = {name for name in imported if name not in ALLOWED and not name.startswith("agents.engine")}
    assert outside == set(), f"{relative} imports {sorted(outside)}: move it into agents/engine/ or key it"


@pytest.mark.parametrize("relative", engine_files())
def test_editing_any_keyed_module_changes_the_key(package_copy, relative):
    before, edited = _edited_digest(package_copy, relative)
    assert edited != before
    assert code_digest(package_copy, LIBRARIES) == before


@pytest.mark.parametrize("relative", ["catalogue/bugs.py", "catalogue/presets.py", "diagnosis/lint.py", "results.py"])
def test_catalogue_and_diagnosis_prose_do_not_change_the_key(package_copy, relative):
    before, edited = _edited_digest(package_copy, relative)
    assert edited == before


def test_an_env_threshold_changes_the_key(package_copy):
    path = package_copy / "envprofile.py"
    original = path.read_text(encoding="utf-8")
    assert "250.0" in original  # CartPole-v1's success threshold
    before = code_digest(package_copy, LIBRARIES)
    try:
        path.write_text(original.replace("250.0", "260.0", 1), encoding="utf-8")
        assert code_digest(package_copy, LIBRARIES) != before
    finally:
        path.write_text(original, encoding="utf-8")


def test_a_new_engine_module_joins_the_key(package_copy):
    before = code_digest(package_copy, LIBRARIES)
    extra = package_copy / "engine" / "prioritized.py"
    try:
        extra.write_text("WEIGHT = 1\n")
        assert "engine/prioritized.py" in engine_files(package_copy)
        assert code_digest(package_copy, LIBRARIES) != before
    finally:
        extra.unlink()


@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_a_library_version_changes_the_key(package_copy, library):
    changed = {**LIBRARIES, library: "9.9.9"}
    assert code_digest(package_copy, changed) != code_digest(package_copy, LIBRARIES)


def test_the_live_key_names_torchs_blas():
    versions = library_versions()
    assert versions["torch"] is not None and versions["numpy"] is not None
    assert "BLAS_INFO=" in versions["blas"] and len(versions["blas"]) < 200


@pytest.mark.integration
def test_every_package_module_training_executes_is_keyed():
    """In a fresh interpreter, train once; every agents.* module then loaded must be in the key,
    so a module reached by a path the ast walk misses (importlib, a re-export) fails here."""
    script = (
        "import json, sys\n"
        "from agents.config import AgentConfig\n"
        "from agents.engine import train\n"
        "config = AgentConfig(total_env_steps=300, eval_period=300, eval_episodes=1)\n"
        "train(config, [0])\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'agents' or m.startswith('agents.'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=Path(PACKAGE_DIR).parent, capture_output=True, text=True, check=True
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    files = set()
    for name in loaded:
        relative = name.removeprefix("agents").lstrip(".").replace(".", "/")
        package = PACKAGE_DIR / relative / "__init__.py"
        files.add(package.relative_to(PACKAGE_DIR).as_posix() if package.is_file() else f"{relative}.py")
    assert files - set(engine_files()) == set()
