"""In-process engine benchmark: groupgate's compiled check against cedarpy and pycasbin.

One tenant (`benchmarks.dataset`, ~10,000 subjects) and N questions are asked of:

- groupgate: profiles compiled beforehand for every subject asked about; only
  `check(profile, action, resource)` is timed;
- cedarpy: `is_authorized(request, policy_set, entities)` with the policies and entities
  parsed once (`benchmarks/peers/cedar_peer.py`), and `is_authorized_batch` in batches;
- pycasbin: `FastEnforcer.enforce(sub, dom, obj, act)` (RBAC with domains, policies indexed
  by type; `benchmarks/peers/casbin_peer.py`), and the plain `Enforcer` on a sample.

All three must give the same answer to every question (the question set is limited to what
all three can express); any disagreement stops the benchmark. Every request is built before
timing starts, so each engine is timed on its own call alone.

Timing: one pinned core, garbage collector off, `runs` runs of all questions in batches of
`batch`; the figure is the median over runs of the per-check mean, the p99 is over per-batch
means. Profile compilation is timed per compile for a subject in 20 groups and in 1 group,
cold (a fresh compiler, nothing shared) and warm (the groups' fragments already compiled,
as in the sidecar's cache where groups are shared by many subjects).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import dataset, report
from benchmarks.dataset import Question
from benchmarks.peers import casbin_peer, cedar_peer
from benchmarks.timing import Timing, pin_one_core, time_batches, time_calls
from groupgate.engine.check import check
from groupgate.engine.graph import parse_graph
from groupgate.engine.profile import Profile, ProfileCompiler, compile_profile
from groupgate.model import Catalog, Graph, Resource
from groupgate.policy import load_policy

POLICIES = Path(__file__).resolve().parents[1] / "policies"
TARGET_MEDIAN_US = 5.0
TARGET_VS_CEDAR = 20.0
TARGET_VS_CASBIN = 100.0


class DisagreementError(AssertionError):
    """The engines answered a question differently: the translation or an engine is wrong."""


@dataclass
class Setup:
    catalog: Catalog
    document: dict[str, Any]
    graph: Graph
    questions: list[Question]


def prepare(*, seed: int = 42, subjects: int = 10_000, questions: int = 10_000) -> Setup:
    """Generate the tenant and the questions, and validate the tenant with groupgate."""
    catalog = load_policy(POLICIES)
    document = dataset.tenant_document(seed, subjects)
    graph = parse_graph(document, catalog)
    asked = dataset.questions(document, catalog, seed=seed, count=questions)
    return Setup(catalog, document, graph, asked)


def groupgate_items(setup: Setup) -> list[tuple[Profile, str, Resource]]:
    """Compile a profile per subject asked about; return (profile, action, resource) items."""
    compiler = ProfileCompiler(setup.catalog)
    graph = setup.graph
    profiles: dict[str, Profile] = {}
    items = []
    for i, q in enumerate(setup.questions):
        profile = profiles.get(q.subject)
        if profile is None:
            profile = compiler.compile(
                graph.subjects[q.subject], graph.groups, graph.settings, tenant=graph.tenant
            )
            profiles[q.subject] = profile
        items.append((profile, q.action, q.resource(i)))
    return items


def answers(setup: Setup) -> dict[str, Any]:
    """Ask every question of all three engines; raise `DisagreementError` on any difference.

    Returns the engines (for timing) and the agreement figures.
    """
    items = groupgate_items(setup)
    cedar = cedar_peer.CedarEngine(cedar_peer.encode(setup.catalog, setup.graph, setup.questions))
    casbin = casbin_peer.CasbinEngine(
        casbin_peer.encode(setup.catalog, setup.graph, setup.questions)
    )
    ours = [check(p, a, r).allow for p, a, r in items]
    theirs_cedar = [cedar.is_allowed(r) for r in cedar.tenant.requests]
    theirs_batch = cedar.batch(cedar.tenant.requests)
    # The first casbin pass also builds its per-domain role managers (warm-up).
    theirs_casbin = [casbin.is_allowed(r) for r in casbin.tenant.requests]
    wrong = [
        i
        for i in range(len(items))
        if not ours[i] == theirs_cedar[i] == theirs_batch[i] == theirs_casbin[i]
    ]
    if wrong:
        lines = [
            f"{setup.questions[i]}: groupgate={ours[i]} cedarpy={theirs_cedar[i]} "
            f"cedarpy_batch={theirs_batch[i]} casbin={theirs_casbin[i]}"
            for i in wrong[:20]
        ]
        raise DisagreementError(
            f"{len(wrong)} of {len(items)} questions answered differently:\n" + "\n".join(lines)
        )
    kinds = Counter(q.kind for q in setup.questions)
    allows = Counter(q.kind for q, ok in zip(setup.questions, ours, strict=True) if ok)
    return {
        "items": items,
        "cedar": cedar,
        "casbin": casbin,
        "agreement": {
            "questions": len(items),
            "agree": len(items) - len(wrong),
            "allow": sum(ours),
            "by_kind": {k: {"questions": kinds[k], "allow": allows[k]} for k in sorted(kinds)},
        },
    }


def _groupgate_batch(chunk: Sequence[tuple[Profile, str, Resource]]) -> None:
    for profile, action, resource in chunk:
        check(profile, action, resource)


def _empty_call(profile: Profile, action: str, resource: Resource) -> None:
    return None


def _harness_batch(chunk: Sequence[tuple[Profile, str, Resource]]) -> None:
    for profile, action, resource in chunk:
        _empty_call(profile, action, resource)


def time_checks(
    found: dict[str, Any], *, runs: int, batch: int, plain_sample: int
) -> dict[str, Timing]:
    """Time every engine on the same questions; return per-check timings."""
    cedar: cedar_peer.CedarEngine = found["cedar"]
    casbin: casbin_peer.CasbinEngine = found["casbin"]
    cedarpy = cedar._cedarpy
    policies, entities = cedar.policies, cedar.entities
    enforce = casbin.enforcer.enforce

    def cedar_single(chunk: Sequence[dict[str, str]]) -> None:
        for request in chunk:
            cedarpy.is_authorized(request, policies, entities)

    def cedar_batch(chunk: Sequence[dict[str, str]]) -> None:
        cedarpy.is_authorized_batch(list(chunk), policies, entities)

    def casbin_loop(chunk: Sequence[tuple[str, str, str, str]]) -> None:
        for request in chunk:
            enforce(*request)

    plain = casbin_peer.CasbinEngine(casbin.tenant, fast=False)
    sample = casbin.tenant.requests[:plain_sample]
    for request in sample:  # warm-up: per-domain role managers
        plain.is_allowed(request)
    plain_enforce = plain.enforcer.enforce

    def casbin_plain_loop(chunk: Sequence[tuple[str, str, str, str]]) -> None:
        for request in chunk:
            plain_enforce(*request)

    items = found["items"]
    return {
        "groupgate": time_batches(_groupgate_batch, items, runs=runs, batch=batch),
        "harness": time_batches(_harness_batch, items, runs=runs, batch=batch),
        "cedarpy": time_batches(cedar_single, cedar.tenant.requests, runs=runs, batch=batch),
        "cedarpy_batch": time_batches(cedar_batch, cedar.tenant.requests, runs=runs, batch=batch),
        "casbin": time_batches(casbin_loop, casbin.tenant.requests, runs=runs, batch=batch),
        "casbin_plain": time_batches(
            casbin_plain_loop, sample, runs=max(3, runs // 2), batch=min(batch, 50)
        ),
    }


def time_compiles(setup: Setup, *, repeat: int) -> dict[str, Any]:
    """Time compiling a profile for subjects in 20 groups and in 1 group, cold and warm."""
    graph, catalog = setup.graph, setup.catalog
    out: dict[str, Any] = {}
    for label, wanted in (("groups_20", 20), ("groups_1", 1)):
        subject = next(
            s
            for s in graph.subjects.values()
            if s.kind.value == "employee" and len(s.memberships) == wanted
        )
        shared = ProfileCompiler(catalog)
        shared.compile(subject, graph.groups, graph.settings)

        def cold(subject: Any = subject) -> None:
            compile_profile(catalog, subject, graph.groups, graph.settings)

        def warm(subject: Any = subject, shared: ProfileCompiler = shared) -> None:
            shared.compile(subject, graph.groups, graph.settings)

        out[label] = {
            "subject": subject.id,
            "cold": time_calls(cold, repeat=repeat),
            "warm": time_calls(warm, repeat=repeat * 10),
        }
    return out


def run(
    *,
    subjects: int = 10_000,
    questions: int | None = None,
    runs: int = 7,
    batch: int = 100,
    seed: int = 42,
    plain_sample: int = 300,
    compile_repeat: int = 300,
) -> dict[str, Any]:
    """Run the engine benchmark; return the results (figures, agreement, machine)."""
    pinned = pin_one_core()
    started = time.perf_counter()
    setup = prepare(seed=seed, subjects=subjects, questions=questions or subjects)
    found = answers(setup)
    timings = time_checks(found, runs=runs, batch=batch, plain_sample=plain_sample)
    compiles = time_compiles(setup, repeat=compile_repeat)
    ours = timings["groupgate"].median_us
    ratios = {
        name: round(t.median_us / ours, 1)
        for name, t in timings.items()
        if name not in ("groupgate", "harness")
    }
    cedar_tenant = found["cedar"].tenant
    casbin_tenant = found["casbin"].tenant
    return {
        "suite": "engine",
        "machine": report.machine(pinned),
        "config": {
            "seed": seed,
            "subjects": subjects,
            "questions": len(setup.questions),
            "runs": runs,
            "batch": batch,
            "casbin_plain_sample": plain_sample,
            "compile_repeat": compile_repeat,
        },
        "dataset": {
            "subjects": len(setup.graph.subjects),
            "groups": len(setup.graph.groups),
            "companies": len(setup.graph.companies),
            "vendors": len(setup.graph.vendors),
            "memberships": sum(len(s.memberships) for s in setup.graph.subjects.values()),
            "cedar_policies": cedar_tenant.policy_count,
            "cedar_entities": len(cedar_tenant.entities),
            "casbin_policy_lines": len(casbin_tenant.policies),
            "casbin_role_links": len(casbin_tenant.links),
        },
        "agreement": found["agreement"],
        "check": {name: t.as_json() for name, t in timings.items()},
        "ratios": ratios,
        "targets": {
            "median_us_at_most_5": ours <= TARGET_MEDIAN_US,
            "vs_cedarpy_at_least_20x": ratios["cedarpy"] >= TARGET_VS_CEDAR,
            "vs_cedarpy_batch_at_least_20x": ratios["cedarpy_batch"] >= TARGET_VS_CEDAR,
            "vs_casbin_at_least_100x": ratios["casbin"] >= TARGET_VS_CASBIN,
        },
        "compile": compiles,
        "seconds": round(time.perf_counter() - started, 1),
    }


def markdown(results: dict[str, Any]) -> str:
    """Return the results as the markdown table the README quotes."""
    c = results["check"]
    r = results["ratios"]
    a = results["agreement"]
    d = results["dataset"]
    cfg = results["config"]
    rows = [
        f"Tenant: {d['subjects']:,} subjects, {d['groups']:,} groups, {d['companies']:,} "
        f"companies, {d['vendors']} vendors, {d['memberships']:,} memberships; "
        f"{a['questions']:,} questions ({a['allow']:,} allowed), all three engines agree on "
        f"{a['agree']:,} of {a['questions']:,}. Median of {cfg['runs']} runs, one pinned core, "
        "gc off; p99 over batches of "
        f"{cfg['batch']} checks.",
        "",
        "| engine, per check | median | p99 | groupgate is faster by |",
        "|---|---|---|---|",
        _row("groupgate `check(profile, action, resource)`", c["groupgate"], None),
        _row(
            "cedarpy `is_authorized` (pre-parsed policies and entities)", c["cedarpy"], r["cedarpy"]
        ),
        _row(
            f"cedarpy `is_authorized_batch` ({cfg['batch']} per call)",
            c["cedarpy_batch"],
            r["cedarpy_batch"],
        ),
        _row("pycasbin `FastEnforcer.enforce` (RBAC with domains)", c["casbin"], r["casbin"]),
        _row(
            f"pycasbin `Enforcer.enforce`, no index ({cfg['casbin_plain_sample']} questions)",
            c["casbin_plain"],
            r["casbin_plain"],
        ),
        _row("(harness: the same loop calling an empty function)", c["harness"], None),
        "",
        f"Peers' encodings: Cedar {d['cedar_policies']} policies, {d['cedar_entities']:,} "
        f"entities; casbin {d['casbin_policy_lines']:,} policy lines, "
        f"{d['casbin_role_links']:,} role links.",
        "",
        "| profile compilation, per compile | median | p99 |",
        "|---|---|---|",
    ]
    for label, name in (("groups_20", "20 groups"), ("groups_1", "1 group")):
        comp = results["compile"][label]
        rows.append(
            f"| subject in {name}, cold (fresh compiler) | {_us(comp['cold']['median_us'])}"
            f" | {_us(comp['cold']['p99_us'])} |"
        )
        rows.append(
            f"| subject in {name}, warm (group fragments shared) | "
            f"{_us(comp['warm']['median_us'])} | {_us(comp['warm']['p99_us'])} |"
        )
    rows += ["", f"Measured {report.machine_line(results['machine'])}."]
    return "\n".join(rows) + "\n"


def _us(value: float) -> str:
    return f"{value:,.2f} µs" if value < 100 else f"{value:,.0f} µs"


def _row(label: str, timing: dict[str, Any], ratio: float | None) -> str:
    factor = f"{ratio:,.0f}x" if ratio is not None else ""
    return f"| {label} | {_us(timing['median_us'])} | {_us(timing['p99_us'])} | {factor} |"
