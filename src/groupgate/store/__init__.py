"""The graph in Redis and the in-process cache of compiled profiles.

What the API talks to:

- `contract`: the `Decider` and `Admin` protocols and their answer types;
- `service`: `GraphService`, the composition root: builds the decider and the admin writer
  over one store, runs the background tasks, swaps the policy set, closes it all.

Decisions:

- `decider`: `StoreDecider`, the `Decider` over a source of entries;
- `purchases`: purchases and the spend ledger's commit and release (a base of the decider);
- `entries`: the `Entries` protocol the decider reads subjects' compiled profiles through;
- `reader`: `StoreReader`, subjects resolved in one script call and compiled, no cache;
- `cached`: `CachedEntries`, the reader's entries kept in the cache (a decorator, same
  interface), stale answers within the bound, consistency tokens confirmed;
- `cache`: compiled profiles, revisions and invalidation (its invariants);
- `freshness`: change events and the revision poll that keep the cache honest;
- `shared`: reads shared by concurrent callers (confirming a token);
- `held`: the resource entities groupgate holds, merged into checks.

Writes and admin reads:

- `admin`: `StoreAdmin`, the `Admin` protocol: the writer's writes and the admin's reads;
- `writes`: validated admin writes, compare-and-set on the revision;
- `generations`: the bulk import as a new generation flipped to in one script;
- `export`: a tenant's graph document, streamed at one revision;
- `events`: the tenant's event stream of graph changes and flow transitions;
- `written`: a write's answer (revision and replicas' acknowledgement).

Approvals and spend: `flows` (approval flows), `flow_codec`, `flow_scripts`; `ledger` (the
spend ledger).

Below them all:

- `keys`: the key schema (read it first);
- `scripts`: the Lua scripts that make every read and write atomic;
- `ops`: atomic reads, compare-and-set writes and change events over redis-py;
- `codec`: stored JSON to model objects and back;
- `connect`: which client a `--redis` URL makes (one Redis, Cluster, Sentinel, embedded);
- `replication`: writes wait for the primary's replicas (`WAIT`);
- `guard`: store errors fail closed (`StoreUnavailable`), counted, in one place.
"""
