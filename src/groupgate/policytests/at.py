"""Where a value sits in a test suite file, and strict readers that name it on error.

Every reader takes an `At` (the file and the path inside it, `checks[3].expect`) and raises
`SuiteError` saying `<file>:<path>: <what is wrong>`, so a CI log points at the exact entry.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from groupgate.errors import GroupgateError


class SuiteError(GroupgateError):
    """A test suite file is invalid (`groupgate test` exits 2): names the file and path."""

    title = "Invalid test suite"


@dataclass(frozen=True, slots=True)
class At:
    """A position in a suite file: `file` as given to the runner, `path` inside it."""

    file: str
    path: str = ""

    def key(self, name: str) -> At:
        return At(self.file, f"{self.path}.{name}" if self.path else name)

    def index(self, i: int) -> At:
        return At(self.file, f"{self.path}[{i}]")

    def fail(self, message: str) -> SuiteError:
        where = f"{self.file}:{self.path}" if self.path else self.file
        return SuiteError(f"{where}: {message}")


def kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def mapping(value: Any, at: At) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise at.fail(f"expected a mapping, got {kind(value)}")
    return value


def sequence(value: Any, at: At) -> list[Any]:
    if not isinstance(value, list):
        raise at.fail(f"expected a list, got {kind(value)}")
    return value


def text(value: Any, at: At) -> str:
    if not isinstance(value, str) or not value.strip():
        raise at.fail(f"expected a non-empty string, got {kind(value)}")
    return value


def optional_text(body: dict[str, Any], name: str, at: At) -> str | None:
    return text(body[name], at.key(name)) if name in body else None


def texts(value: Any, at: At) -> list[str]:
    return [text(item, at.index(i)) for i, item in enumerate(sequence(value, at))]


def choice(value: Any, allowed: Collection[str], at: At) -> str:
    if value not in allowed:
        shown = value if isinstance(value, str) else kind(value)
        raise at.fail(f"expected one of {', '.join(sorted(allowed))}, got {shown!r}")
    return str(value)


def only(
    body: dict[str, Any], allowed: Collection[str], at: At, required: Collection[str] = ()
) -> None:
    """Refuse unknown keys (naming the first) and missing required ones."""
    for name in sorted(body):
        if name not in allowed:
            raise at.key(str(name)).fail(f"unknown key (allowed: {', '.join(sorted(allowed))})")
    for name in sorted(required):
        if name not in body:
            raise at.key(name).fail("missing")
