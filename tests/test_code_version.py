"""The cache key is the code that ran: every engine module's source and the keyed libraries."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agents.results import PACKAGE_DIR, _imported_modules, code_digest, engine_closure, library_versions

LIBRARIES = {"torch": "2.13.0+cpu", "numpy": "2.4.6", "gymnasium": "1.4.0", "box2d": None, "blas": "mkl"}


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    copy = tmp_path_factory.mktemp("key") / "agents"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_imports_are_read_wherever_they_stand():
    source = (
        "import agents.networks\n"
        "from agents.replay import ReplayBuffer\n"
        "from . import seeding\n"
        "from .envs import make\n"
        "from agents import config\n"
        "import numpy\n"
        "def f():\n    from agents.bugs import BUGS\n"
        "if TYPE_CHECKING:\n    from agents.targets import T\n"
    )
    assert _imported_modules(source, "agents") == {"networks", "replay", "seeding", "envs", "config", "bugs", "targets"}


@pytest.mark.parametrize("module", engine_closure())
def test_editing_any_engine_module_changes_the_key(package_copy, module):
    before = code_digest(package_copy, LIBRARIES)
    path = package_copy / module
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# an edit\n")
        assert code_digest(package_copy, LIBRARIES) != before
    finally:
        path.write_bytes(original)
    assert code_digest(package_copy, LIBRARIES) == before


def test_a_new_module_the_engine_imports_joins_the_key(package_copy):
    engine = package_copy / "engine.py"
    original = engine.read_bytes()
    before = code_digest(package_copy, LIBRARIES)
    try:
        (package_copy / "prioritized.py").write_text("WEIGHT = 1\n")
        assert code_digest(package_copy, LIBRARIES) == before  # not imported: not trained code
        engine.write_bytes(original + b"\nfrom agents.prioritized import WEIGHT\n")
        assert "prioritized.py" in engine_closure(package_copy)
        keyed = code_digest(package_copy, LIBRARIES)
        (package_copy / "prioritized.py").write_text("WEIGHT = 2\n")
        assert code_digest(package_copy, LIBRARIES) != keyed
    finally:
        engine.write_bytes(original)
        (package_copy / "prioritized.py").unlink()


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
    so a module reached by a path the ast walk misses (importlib, a new package) fails here."""
    script = (
        "import json, sys\n"
        "from agents.engine import train\n"
        "from agents.presets import get_variant\n"
        "config = get_variant('article-target').config.replace(total_env_steps=300, eval_period=300, eval_episodes=1)\n"
        "train(config, [0])\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'agents' or m.startswith('agents.'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=Path(PACKAGE_DIR).parent, capture_output=True, text=True, check=True
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    files = {"__init__.py" if name == "agents" else name.split(".", 1)[1].replace(".", "/") + ".py" for name in loaded}
    assert files - set(engine_closure()) == set()
