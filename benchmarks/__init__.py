"""Benchmarks for groupgate: `python -m benchmarks <suite>` from the repository root.

Suites (one module each, each returning a dict of figures that `report` writes as JSON and
markdown under `benchmarks/results/`):

- `engine`: in-process checks against compiled profiles, side by side with cedarpy and
  pycasbin on the same tenant and the same questions (`benchmarks/engine.py`);
- `store`: cold resolves, bulk import and revocation lag on a private Redis
  (`benchmarks/store.py`).

`benchmarks/dataset.py` generates the tenant and the questions every suite shares;
`benchmarks/peers/` translates them for the other engines. Nothing here is imported by
`groupgate` itself, and no test asserts a timing (STYLE.md: performance is measured here).
"""
