"""The wheel: every package of src/, the policies as package data, the licence file.

An installed groupgate (`pip install .`, run from any directory) finds its policy directory
inside the package, so `groupgate serve --demo` works without a checkout.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import groupgate

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_of_src_is_listed() -> None:
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(p.parent.relative_to(ROOT / "src").parts)
        for p in (ROOT / "src").rglob("__init__.py")
    }
    assert set(listed["packages"]) == found | {"groupgate.policies"}


@pytest.mark.slow
def test_the_wheel_ships_the_policies_and_the_license(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("groupgate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (ROOT / "policies").rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".json"):
            assert f"groupgate/policies/{path.relative_to(ROOT / 'policies')}" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert wheel.name.startswith(f"groupgate-{groupgate.__version__}-")
