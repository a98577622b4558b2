"""Smoke test of the benchmark harness: the dataset parses and the three engines agree.

No timing is asserted here (STYLE.md: performance is measured under benchmarks/, never by
timed tests). cedarpy and casbin are bench extras; without them the test is skipped.
"""

from __future__ import annotations

import pytest

from benchmarks import dataset
from benchmarks.engine import answers, prepare
from groupgate.engine.graph import parse_graph

pytest.importorskip("cedarpy")
pytest.importorskip("casbin")


def test_tiny_tenant_parses_and_engines_agree() -> None:
    setup = prepare(seed=3, subjects=50, questions=200)
    assert len(setup.graph.subjects) >= 50
    # The generator is deterministic: the same seed gives the same document.
    assert dataset.tenant_document(3, 50) == setup.document
    assert parse_graph(setup.document, setup.catalog).tenant == setup.graph.tenant

    found = answers(setup)  # raises DisagreementError on any difference

    agreement = found["agreement"]
    assert agreement["agree"] == agreement["questions"] == 200
    assert 0 < agreement["allow"] < 200
    assert set(agreement["by_kind"]) == {"customer", "employee", "vendor_user"}
