"""The tests carry their own data: nothing outside the repository, the AuthZEN cases unchanged."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
AUTHZEN = TESTS / "data" / "authzen"

#: Ways a test could reach the folder beside the repository (`../shared`).
OUTSIDE = re.compile(r"""\.\./shared|parent\s*/\s*["']shared["']|parents\[\d+\]\s*/\s*["']shared""")

#: Git blob ids of the copied files (tests/data/authzen/README.md names their sources).
AUTHZEN_BLOBS = {
    "todo-decisions.json": "fb73e456fe5a3b6c4f27345c8aa37bc71768dcf6",
    "gateway-decisions.json": "af45c58ead29f762c4f5ee381408007d660aaa91",
    "todo-users.json": "f5e7acbfc9f64e506df925ea3c5caefa8162959c",
    "search/subject/results.json": "f654be3e02ee0db6671ba1d4569a13fd4d314ef7",
    "search/resource/results.json": "e8a3b2404b76c2cc61b3b391be742aef5fe2b1ec",
    "search/action/results.json": "96535be5f9393e1d72e86c435c5c7e70f41de79f",
    "search/data/users.json": "ed04188ea0a200e0a246afc20169de4bd1479ed8",
    "search/data/records.json": "aecc4511b1d55cd4f533243a80e5d25326d158c9",
}


def git_blob_id(data: bytes) -> str:
    """The id `git hash-object` gives a file with these bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def test_no_test_reads_outside_the_repository() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(TESTS.parent)}:{number}: {line.strip()}")
    assert not offenders, "tests must read only files of the repository:\n" + "\n".join(offenders)


@pytest.mark.parametrize("line", ['ROOT / ".." / "../shared/x"', 'REPO.parent / "shared"'])
def test_the_outside_pattern_catches_both_spellings(line: str) -> None:
    assert OUTSIDE.search(line)


@pytest.mark.parametrize("name", sorted(AUTHZEN_BLOBS))
def test_authzen_case_file_is_unchanged(name: str) -> None:
    assert git_blob_id((AUTHZEN / name).read_bytes()) == AUTHZEN_BLOBS[name], (
        f"tests/data/authzen/{name} differs from the working group's file: never edit it"
    )


def test_every_authzen_data_file_is_pinned() -> None:
    files = {
        path.relative_to(AUTHZEN).as_posix() for path in AUTHZEN.rglob("*.json") if path.is_file()
    }
    assert files == set(AUTHZEN_BLOBS)
