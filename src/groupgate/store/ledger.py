"""The spend ledger in Redis (SPEC section 5): commit and release, each one Lua script.

Which totals a purchase counts toward and which limits apply is the engine's business
(`engine/spend.lines`); this module moves the totals atomically:

- `commit` is idempotent by order id: the same order id with the same content answers what
  the first commit answered and counts nothing twice; with other content it is refused. In
  one script it checks every applicable limit (total + amount <= limit, integers), checks
  and consumes the approval flow when one is named, adds the amount to every total, and
  records the order. Two concurrent commits are two scripts, which Redis runs one after
  the other: they can never both pass a limit only one fits under.
- `release` subtracts exactly what the order added, once; releasing again answers the same.

Every key is in the tenant's slot (`keys.py`), outside the graph generations, so an import
does not reset spend. Period totals are STRING keys; a company's budgets of one cost centre
share a HASH (an evaluation reads it whole with the graph, before it knows the budget ids).
Totals expire one period after their bucket ends (`Line.expires_at`; a budget hash when the
last of its budgets does);
an order record expires `retention` seconds after its commit. A release whose period total
has expired leaves that total alone (it must not come back negative without an expiry).

The approval flow (`keys.flow`, written by `store/flows.py`) covers a commit when it is
`APPROVED`, was requested by the same subject for the same company and currency (and cost
centre, when it names one), approved at least the amount, and no other order used it; the
commit then sets its `used_by` to the order id in the same script, so it is used once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from groupgate.engine.spend import BUDGET_RULE, PERIOD_RULE, Line, describe
from groupgate.errors import NotFound, NotReplicated, Refused
from groupgate.store import keys
from groupgate.store.contract import Order, Released
from groupgate.store.ops import Client
from groupgate.store.replication import Replication

# Compare two non-negative decimal strings exactly (no floats): `le(a, b)` is a <= b.
_DECIMAL = """
local function digits(s)
  local i, f = string.match(s, '^(%d+)%.?(%d*)$')
  if not i then return nil end
  i = string.gsub(i, '^0+', '')
  f = string.gsub(f, '0+$', '')
  return i, f
end
local function le(a, b)
  local ai, af = digits(a)
  local bi, bf = digits(b)
  if not ai or not bi then return false end
  if #ai ~= #bi then return #ai < #bi end
  if ai ~= bi then return ai < bi end
  local n = math.max(#af, #bf)
  af = af .. string.rep('0', n - #af)
  bf = bf .. string.rep('0', n - #bf)
  return af <= bf
end
"""

# KEYS: order record, ledger meta, flow (read only when ARGV[3] == '1'), totals...
# ARGV: fingerprint, units, has approval, subject, company, currency, amount as sent,
#       cost centre ('' none), order id, record ttl, time, then (limit or '', expire at, hash
#       field or '') per total: a total is a STRING, or a field of a HASH (budgets).
#       Returns {'ok'|'replay', totals 'a,b,..', ledger rev, approved '0'|'1', time},
#       {'mismatch'}, {'released'}, {'approval', why}, {'exceeded', {i...}, totals after},
#       {'overflow', i}.
COMMIT = (
    _DECIMAL
    + """
local seen = redis.call('HGET', KEYS[1], 'fingerprint')
if seen then
  if seen ~= ARGV[1] then return {'mismatch'} end
  local r = redis.call('HMGET', KEYS[1], 'status', 'totals', 'rev', 'approved', 'time')
  if r[1] ~= 'committed' then return {'released'} end
  return {'replay', r[2], r[3], r[4], r[5]}
end
local units = tonumber(ARGV[2])
local now = tonumber(ARGV[11])
local n = #KEYS - 3
local after = {}
local over = {}
for i = 1, n do
  local key, field = KEYS[3 + i], ARGV[11 + 3 * i]
  local current
  if field == '' then
    current = redis.call('GET', key)
  else
    current = redis.call('HGET', key, field)
  end
  local total = tonumber(current or '0') + units
  if total >= 9007199254740992 then return {'overflow', i} end
  after[i] = string.format('%d', total)
  local limit = ARGV[9 + 3 * i]
  if limit ~= '' and total > tonumber(limit) then over[#over + 1] = i end
end
local approved = '0'
if ARGV[3] == '1' then
  local f = redis.call('HMGET', KEYS[3], 'status', 'requester', 'company', 'currency',
                       'amount', 'used_by', 'cost_center')
  if not f[1] then return {'approval', 'no such approval flow'} end
  if f[1] ~= 'APPROVED' then return {'approval', 'the approval flow is ' .. f[1]} end
  if f[2] ~= ARGV[4] then return {'approval', 'the flow was requested by another subject'} end
  if f[3] ~= ARGV[5] then return {'approval', 'the flow is for company ' .. tostring(f[3])} end
  if f[4] ~= ARGV[6] then return {'approval', 'the flow is in ' .. tostring(f[4])} end
  if not le(ARGV[7], f[5] or '') then
    return {'approval', 'the flow approved ' .. tostring(f[5]) .. ' only'}
  end
  if f[7] and f[7] ~= '' and f[7] ~= ARGV[8] then
    return {'approval', 'the flow is for cost centre ' .. f[7]}
  end
  if f[6] and f[6] ~= '' and f[6] ~= ARGV[9] then
    return {'approval', 'the flow was used by order ' .. f[6]}
  end
  redis.call('HSET', KEYS[3], 'used_by', ARGV[9])
  approved = '1'
elseif #over > 0 then
  return {'exceeded', over, table.concat(after, ',')}
end
local names = {}
for i = 1, n do
  local key, field, expire = KEYS[3 + i], ARGV[11 + 3 * i], tonumber(ARGV[10 + 3 * i])
  if field == '' then
    redis.call('INCRBY', key, units)
    redis.call('EXPIREAT', key, expire)
  else
    -- A hash holds several budgets: it lives as long as the longest-lived of them.
    redis.call('HINCRBY', key, field, units)
    local ttl = redis.call('TTL', key)
    if ttl < 0 or now + ttl < expire then redis.call('EXPIREAT', key, expire) end
  end
  names[i] = key .. '\\t' .. field
end
local rev = redis.call('HINCRBY', KEYS[2], 'rev', 1)
local totals = table.concat(after, ',')
redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'status', 'committed', 'units', ARGV[2],
           'subject', ARGV[4], 'company', ARGV[5], 'currency', ARGV[6], 'amount', ARGV[7],
           'cost_center', ARGV[8], 'keys', table.concat(names, '\\n'), 'totals', totals,
           'rev', rev, 'approved', approved, 'time', ARGV[11])
redis.call('EXPIRE', KEYS[1], ARGV[10])
return {'ok', totals, rev, approved, ARGV[11]}
"""
)

# KEYS: order record, ledger meta. ARGV: time.
# Returns {'missing'} or {rev, subject, company, amount, currency, cost centre}.
RELEASE = """
local r = redis.call('HMGET', KEYS[1], 'status', 'units', 'keys', 'released_rev')
if not r[1] then return {'missing'} end
local rev = r[4]
if r[1] ~= 'released' then
  for entry in string.gmatch(r[3], '[^\\n]+') do
    local key, field = string.match(entry, '^([^\\t]*)\\t(.*)$')
    if field == '' then
      if redis.call('EXISTS', key) == 1 then redis.call('DECRBY', key, r[2]) end
    elseif redis.call('HEXISTS', key, field) == 1 then
      redis.call('HINCRBY', key, field, -tonumber(r[2]))
    end
  end
  rev = redis.call('HINCRBY', KEYS[2], 'rev', 1)
  redis.call('HSET', KEYS[1], 'status', 'released', 'released_rev', rev, 'released_at', ARGV[1])
end
local f = redis.call('HMGET', KEYS[1], 'subject', 'company', 'amount', 'currency', 'cost_center')
return {tostring(rev), f[1], f[2], f[3], f[4], f[5]}
"""

# KEYS: totals; ARGV: per total its hash field or ''. Returns their values (false: nothing
# spent yet).
TOTALS = """
local out = {}
for i, key in ipairs(KEYS) do
  if ARGV[i] == '' then
    out[i] = redis.call('GET', key)
  else
    out[i] = redis.call('HGET', key, ARGV[i])
  end
end
return out
"""


@dataclass(frozen=True, slots=True)
class Committed:
    """What a commit did: the totals after it per line, the ledger revision it made; for a
    replay, those of the first commit and its time (epoch seconds)."""

    totals: tuple[int, ...]
    ledger_revision: int
    approved: bool
    replayed: bool
    time: int


class Ledger:
    """The ledger scripts over one client (a Redis, a Cluster or the embedded fakeredis)."""

    def __init__(
        self, client: Client, retention: int, replication: Replication | None = None
    ) -> None:
        self.retention = retention
        #: Commits and releases wait for the replicas as graph writes do (`NotReplicated`).
        self.replication = replication or Replication(client, replicas=0, wait_ms=1, refresh=1)
        self._commit = client.register_script(COMMIT)
        self._release = client.register_script(RELEASE)
        self._totals = client.register_script(TOTALS)

    async def totals(self, tenant: str, lines: Sequence[Line]) -> list[int]:
        """The current totals of `lines`, read in one call (0: nothing spent)."""
        if not lines:
            return []
        where = [total_slot(tenant, line) for line in lines]
        raw = await self._totals(keys=[k for k, _ in where], args=[f for _, f in where])
        return [int(v) if v else 0 for v in raw]

    async def commit(self, tenant: str, order: Order, lines: Sequence[Line], now: int) -> Committed:
        """Commit `order` against `lines`; `Refused` (409, with its rule) otherwise."""
        where = [total_slot(tenant, line) for line in lines]
        names = [k for k, _ in where]
        flow = keys.flow(tenant, order.approval_id) if order.approval_id else names[0]
        args: list[Any] = [
            order.fingerprint(),
            order.units,
            "1" if order.approval_id else "0",
            order.subject,
            order.company,
            order.amount.currency,
            order.text,
            order.cost_center or "",
            order.order_id,
            self.retention,
            now,
        ]
        for line, (_, field) in zip(lines, where, strict=True):
            args += ["" if line.limit is None else line.limit, line.expires_at, field]
        order_key = keys.spend_order(tenant, order.order_id)
        written = [order_key, keys.ledger(tenant), flow, *names]

        async def run(client: Redis | None) -> Any:
            return await self._commit(keys=written, args=args, client=client)

        raw, acked, wanted = await self.replication.write(tenant, run)
        kind = _text(raw[0])
        if kind in ("ok", "replay"):
            if acked < wanted:
                raise NotReplicated(int(raw[2]), acked, wanted, self.replication.wait_ms)
            totals = tuple(int(t) for t in _text(raw[1]).split(","))
            approved = _text(raw[3]) == "1"
            return Committed(totals, int(raw[2]), approved, kind == "replay", int(raw[4]))
        raise _refusal(kind, raw, order, lines)

    async def release(self, tenant: str, order_id: str, now: int) -> Released:
        """Release a committed order (idempotent); `NotFound` when no such order is kept."""
        written = [keys.spend_order(tenant, order_id), keys.ledger(tenant)]

        async def run(client: Redis | None) -> Any:
            return await self._release(keys=written, args=[now], client=client)

        raw, acked, wanted = await self.replication.write(tenant, run)
        if _text(raw[0]) == "missing":
            raise NotFound(f"unknown order {order_id!r} (never committed, or expired)")
        if acked < wanted:
            raise NotReplicated(int(raw[0]), acked, wanted, self.replication.wait_ms)
        rev, subject, company, amount, currency, cost_center = (_text(v) for v in raw)
        return Released(int(rev), subject, company, amount, currency, cost_center or None)


def total_slot(tenant: str, line: Line) -> tuple[str, str]:
    """Where a line's total is kept: a key, and a hash field ('' for a STRING key)."""
    if line.scope == "budget":
        center = line.cost_center or ""
        return keys.spend_budgets(tenant, line.owner, center, line.currency), line.bucket
    return keys.spend_total(tenant, line.scope, line.owner, line.bucket, line.currency), ""


def _refusal(kind: str, raw: list[Any], order: Order, lines: Sequence[Line]) -> Refused:
    oid = order.order_id
    if kind == "mismatch":
        return Refused(
            "order_id_reused",
            f"order {oid!r} was committed with other content (a retry must send the same "
            "subject, company, amount, currency, cost centre and approval)",
        )
    if kind == "released":
        return Refused("order_released", f"order {oid!r} was released; it commits once")
    if kind == "approval":
        return Refused(
            "approval_not_usable",
            f"approval {order.approval_id!r} does not cover this commit: {_text(raw[1])}",
        )
    if kind == "overflow":
        return Refused("ledger_overflow", "the spend total would exceed the ledger's range")
    after = [int(t) for t in _text(raw[2]).split(",")]
    over = [int(i) - 1 for i in raw[1]]
    rule = PERIOD_RULE if any(lines[i].rule == PERIOD_RULE for i in over) else BUDGET_RULE
    names = ", ".join(describe(lines[i]) for i in over)
    return Refused(
        rule,
        f"the purchase would take spend past {names}; it needs the approval of the "
        "company's Admins (approval_id of an APPROVED flow)",
        {"limits": [lines[i].as_json(after[i] - order.units) for i in over]},
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
