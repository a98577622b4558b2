"""The proxy helpers refuse to skip silently: a missing binary fails the test under
GROUPGATE_REQUIRE_PROXIES=1 (scripts/check sets it) and skips it otherwise."""

from __future__ import annotations

import pytest

from tests.support.servers import require


def test_missing_proxy_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUPGATE_REQUIRE_PROXIES", "1")
    with pytest.raises(pytest.fail.Exception, match="GROUPGATE_REQUIRE_PROXIES=1"):
        require("groupgate-no-such-proxy", "GROUPGATE_REQUIRE_PROXIES")


def test_missing_proxy_skips_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROUPGATE_REQUIRE_PROXIES", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require("groupgate-no-such-proxy", "GROUPGATE_REQUIRE_PROXIES")
