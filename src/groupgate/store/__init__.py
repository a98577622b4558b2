"""The graph in Redis and the in-process cache of compiled profiles.

- `keys`: the key schema (read it first);
- `scripts`: the Lua scripts that make every read and write atomic;
- `ops`: atomic reads, compare-and-set writes and change events over redis-py;
- `writes`: validated admin writes and bulk import;
- `cache`: compiled profiles, revisions and invalidation;
- `service`: `GraphService`, the `Decider` and `Admin` the API talks to.
"""
