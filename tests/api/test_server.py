"""`groupgate.api.server.run`: the process-level set-up around `web.run_app`."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from groupgate.api import server
from groupgate.config import load_config


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_run_raises_the_collector_thresholds_before_serving(
    monkeypatch: pytest.MonkeyPatch, thresholds: None
) -> None:
    gc.set_threshold(700, 10, 10)
    seen: dict[str, Any] = {}

    def run_app(app: Any, **kwargs: Any) -> None:
        seen["thresholds"] = gc.get_threshold()
        seen["port"] = kwargs["port"]
        app.close()  # the un-awaited factory coroutine
        kwargs["loop"].close()

    monkeypatch.setattr(server.web, "run_app", run_app)
    server.run(load_config(overrides={"port": 8123}))
    assert seen == {"thresholds": server.GC_THRESHOLDS, "port": 8123}
    assert server.GC_THRESHOLDS[0] > 700  # young collections rarer than Python's default
