"""The dependency rule of DESIGN.md, kept by import-linter's contracts in pyproject.toml.

import-linter reads a package from one folder, and pyproject maps hw/, sw/ and sim/ into `eiex.*`
from three. The test copies the sources into that layout, then runs `lint-imports` on the copy.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: where each part of the `eiex` namespace lives in the repository (pyproject's package-dir)
PACKAGE_DIRS = {"eiex": "eiex", "eiex/sw": "sw", "eiex/hw": "hw", "eiex/sim": "sim"}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def stage(tmp_path: Path) -> Path:
    """The `eiex` package laid out in one folder, with the contracts beside it."""
    for target, source in PACKAGE_DIRS.items():
        shutil.copytree(ROOT / source, tmp_path / target, ignore=shutil.ignore_patterns("__pycache__", "*.toml"),
                        dirs_exist_ok=True)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def lint_imports(folder: Path) -> subprocess.CompletedProcess:
    # run in the staged folder: lint-imports puts its working directory first on the import path
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=folder, capture_output=True, text=True,
                          timeout=300)


pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")


def test_the_contracts_are_kept(tmp_path):
    result = lint_imports(stage(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("sw/data.py", "import eiex.hw.eie.golden", "eiex.sw is not allowed to import eiex.hw"),
    ("hw/uart.py", "import eiex.sim.simulate", "eiex.hw is not allowed to import eiex.sim"),
    ("sim/engines.py", "import eiex.cli", "eiex.sim is not allowed to import eiex.cli"),
    ("hw/ram.py", "import eiex.sw.train", "eiex.hw is not allowed to import eiex.sw.train"),
])
def test_a_forbidden_import_breaks_them(tmp_path, module, line, broken):
    folder = stage(tmp_path)
    source, name = module.split("/", 1)
    path = folder / next(t for t, s in PACKAGE_DIRS.items() if s == source) / name
    path.write_text(path.read_text() + f"\n{line}  # a violation\n")
    result = lint_imports(folder)
    assert result.returncode != 0 and broken in result.stdout
