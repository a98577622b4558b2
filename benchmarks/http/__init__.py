"""HTTP benchmarks: groupgate served over HTTP against Cerbos and a bare aiohttp handler.

`python -m benchmarks.http [--quick]` runs the whole comparison in one go and writes
`benchmarks/results/http-*.json|md` (see `run.py`). The modules, one concept each:

- `workload.py`: the tenant (`benchmarks.dataset`), the questions, groupgate's own answers
  to them, and the request lists written as Lua tables for wrk;
- `wrk/rotate.lua` + `wrkrun.py`: the one wrk script (rotates through a request list, prints
  JSON figures in `done()`) and the Python side that runs wrk and parses the figures;
- `cerbos.py`: installs the Cerbos PDP from npm, writes the equivalent Cerbos policy, starts
  and stops `cerbos server`, and checks that Cerbos and groupgate agree before timing;
- `bare.py`: an aiohttp app with one POST route that parses the body and answers a constant:
  the ceiling any aiohttp service can reach on this machine;
- `lowlevel.py`: groupgate's `/v1/check` use case served by aiohttp's low-level
  `web.Server` (no routing, no middleware): the A/B that justifies the hand-written decision
  listener;
- `listeners.py`: the per-listener workloads (check, AuthZEN evaluation, forward-auth with
  HS256 and RS256 tokens) and their ratios;
- `processes.py`: free ports, CPU pinning and start/stop of the servers under test;
- `run.py`: `run_http(...)` (alternating rounds, medians) and `markdown(...)`;
- `profiling.py`: py-spy under load, with the top frames of the `/v1/check` path.

Only ever targets 127.0.0.1, and every run stops by itself (wrk `-d`, timeouts on every wait).
"""
