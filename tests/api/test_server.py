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
        kwargs["print"]("======== Running on ... ========")  # what aiohttp says once bound
        app.close()  # the un-awaited factory coroutine
        kwargs["loop"].close()

    monkeypatch.setattr(server.web, "run_app", run_app)
    server.run(load_config(overrides={"port": 8123}), on_bound=lambda: seen.update(bound=True))
    assert seen == {"thresholds": server.GC_THRESHOLDS, "port": 8123, "bound": True}
    assert server.GC_THRESHOLDS[0] > 700  # young collections rarer than Python's default


def test_the_file_limit_is_raised_and_a_too_small_one_is_named(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    limits = {"now": (256, 4096)}
    monkeypatch.setattr(server.resource, "getrlimit", lambda _: limits["now"])
    monkeypatch.setattr(server.resource, "setrlimit", lambda _, v: limits.update(now=v))
    server.raise_file_limit(load_config(env={}))
    assert limits["now"] == (4096, 4096)  # 1,024 connections + pool + reserve fit
    assert "open-file limit" not in caplog.text
    limits["now"] = (512, 512)
    server.raise_file_limit(load_config(env={"GROUPGATE_DECISION_PORT": "8182"}))
    assert "open-file limit (512)" in caplog.text
    assert "GROUPGATE_HTTP_MAX_CONNECTIONS" in caplog.text
