"""The Lua scripts: every read and write of graph data is one atomic script call.

Each script takes the tenant's `meta` key as KEYS[1]: it routes the call to the tenant's slot
on a Cluster, and every other key it touches shares that slot through the hash tag (see
keys.py). Scripts read `meta.gen` themselves, so a reader never mixes two generations.
"""

from __future__ import annotations

# The event helper is Lua text shared with the flow scripts (store/flow_scripts.py).
EMIT = """
local function emit(stream, maxlen, rev, n, etype, head, tail)
  local body = head .. rev .. ',"id":"' .. rev .. '-' .. n .. '"' .. tail
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'type', etype, 'event', body)
end
"""

# Resolve subjects for decisions: for each subject id, its JSON, its links and the JSON of
# every group it is linked to plus the tenant's default customer groups. One round trip.
# ARGV: tenant prefix, subject id...
# Returns {rev, gen, stamp, settings, {subject, links, group ids, group jsons}...}
RESOLVE = """
local rev = redis.call('HGET', KEYS[1], 'rev')
local gen = redis.call('HGET', KEYS[1], 'gen')
if not gen then return {false} end
local stamp = redis.call('HGET', KEYS[1], 'stamp') or ''
local base = ARGV[1] .. gen .. ':'
local settings = redis.call('GET', base .. 'settings') or ''
local defaults = redis.call('SMEMBERS', base .. 'defaults')
local out = {rev, gen, stamp, settings}
for a = 2, #ARGV do
  local sid = ARGV[a]
  local subject = redis.call('GET', base .. 'subject:' .. sid)
  if not subject then
    out[#out + 1] = {false}
  else
    local links = redis.call('HGETALL', base .. 'links:' .. sid)
    local ids = {}
    for i = 1, #links, 2 do ids[#ids + 1] = links[i] end
    for _, g in ipairs(defaults) do ids[#ids + 1] = g end
    local groups = {}
    for i, g in ipairs(ids) do groups[i] = redis.call('GET', base .. 'group:' .. g) or '' end
    out[#out + 1] = {subject, links, ids, groups}
  end
end
return out
"""

# The start of every read relative to the current generation: the tenant's revision,
# generation and stamp (`out`), and the generation's key prefix (`base`); {false} when the
# tenant does not exist.
SNAPSHOT = """
local rev = redis.call('HGET', KEYS[1], 'rev')
local gen = redis.call('HGET', KEYS[1], 'gen')
if not gen then return {false} end
local stamp = redis.call('HGET', KEYS[1], 'stamp') or ''
local base = ARGV[1] .. gen .. ':'
local out = {rev, gen, stamp}
"""

# Every resource entity the tenant holds, for the in-process table. One round trip.
# ARGV: tenant prefix, the `rtypes` suffix, the `resources:` suffix prefix.
# Returns {rev, gen, stamp, type, {id, json, ...}, type, {...}, ...}; {false}: no tenant.
LOAD_RESOURCES = (
    SNAPSHOT
    + """for _, t in ipairs(redis.call('SMEMBERS', base .. ARGV[2])) do
  out[#out + 1] = t
  out[#out + 1] = redis.call('HGETALL', base .. ARGV[3] .. t)
end
return out
"""
)

# Generic atomic reads relative to the current generation.
# ARGV: tenant prefix, then repeated (command, key suffix, nargs, args...).
# Commands: GET, SMEMBERS, HGETALL, HGET, HEXISTS, HLEN, ZRANGEBYLEX, SISMEMBER, EXISTS.
# Returns {rev, gen, stamp, result...}; {false} when the tenant does not exist.
READ = (
    SNAPSHOT
    + """local i = 2
while i <= #ARGV do
  local cmd, suffix, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local args = {}
  for k = 1, n do args[k] = ARGV[i + 2 + k] end
  local value = redis.call(cmd, base .. suffix, unpack(args))
  if value == false or value == nil then value = '' end
  out[#out + 1] = value
  i = i + 3 + n
end
return out
"""
)

# Compare-and-set write: apply the operations only if the tenant's revision and generation are
# still the ones the writer validated against, then bump the revision and record the stamp.
# ARGV: expected rev ('' = tenant must not exist), expected gen, stamp, then repeated
# (command, full key, nargs, args...). The command EVENT (key: the event stream; args: maxlen,
# type, head, tail) appends an event once the new revision is known (EMIT), in the
# same script as the change. Returns the new revision, or -1 on a conflict.
CAS = (
    EMIT
    + """
local rev = redis.call('HGET', KEYS[1], 'rev')
local gen = redis.call('HGET', KEYS[1], 'gen')
if ARGV[1] == '' then
  if gen then return -1 end
elseif rev ~= ARGV[1] or gen ~= ARGV[2] then
  return -1
end
local ops, events = {}, {}
local i = 4
while i <= #ARGV do
  local cmd, key, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local args = {}
  for k = 1, n do args[k] = ARGV[i + 2 + k] end
  if cmd == 'EVENT' then
    events[#events + 1] = {key, args[1], args[2], args[3], args[4]}
  else
    ops[#ops + 1] = {cmd, key, args}
  end
  i = i + 3 + n
end
-- The events are the first writes: should one fail (a full memory refuses the first write),
-- nothing of the change is written either (Redis does not roll a failed script back).
local new = (tonumber(rev) or 0) + 1
for n, e in ipairs(events) do emit(e[1], e[2], new, n, e[3], e[4], e[5]) end
if ARGV[1] == '' then redis.call('HSET', KEYS[1], 'gen', ARGV[2], 'rev', 0) end
for _, op in ipairs(ops) do redis.call(op[1], op[2], unpack(op[3])) end
redis.call('HSET', KEYS[1], 'stamp', ARGV[3])
return redis.call('HINCRBY', KEYS[1], 'rev', 1)
"""
)

# Read the revision, generation and stamp of a tenant (polling, reconnects, tokens).
META = """
return {redis.call('HGET', KEYS[1], 'rev') or false, redis.call('HGET', KEYS[1], 'gen') or false,
        redis.call('HGET', KEYS[1], 'stamp') or ''}
"""

# Who may approve (SPEC section 5, engine/approvers.py): a member approves through a link
# that is not read-only (`ro`, `ro+sc`) and holds now (a link `<perm>|<from ms>|<until ms>`
# holds from `from` until before `until`: store/codec.py). `approving(gid, first)` lists a
# group's members linked so (only the first when `first`) and the next moment one of the
# group's links starts or ends (0: none). ARGV[2] is now in ms, ARGV[3..4] the `members:`
# and `links:` key prefixes relative to the generation.
_APPROVING = """
local now = tonumber(ARGV[2])
local function approving(gid, first)
  local found, boundary = {}, 0
  for _, m in ipairs(redis.call('SMEMBERS', base .. ARGV[3] .. gid)) do
    local link = redis.call('HGET', base .. ARGV[4] .. m, gid)
    local holds = link ~= false and link ~= nil
    if holds then
      local _, _, from, ends = string.find(link, '|([0-9]*)|([0-9]*)$')
      from, ends = tonumber(from), tonumber(ends)
      if from and from > now then
        holds = false
        if boundary == 0 or from < boundary then boundary = from end
      end
      if ends then
        if ends <= now then holds = false
        elseif boundary == 0 or ends < boundary then boundary = ends end
      end
    end
    if holds and string.sub(link, 1, 2) ~= 'ro' then
      found[#found + 1] = m
      if first then return found, boundary end
    end
  end
  return found, boundary
end
"""

# The members of each group who may approve now. ARGV: tenant prefix, now (ms), `members:`
# prefix, `links:` prefix, group id... Returns {rev, gen, stamp, {member...} per group}.
APPROVING_MEMBERS = (
    SNAPSHOT
    + _APPROVING
    + """for a = 5, #ARGV do out[#out + 1] = (approving(ARGV[a], false)) end
return out
"""
)

# Each company's approval group ('' for none), whether it is active now (has a member who
# may approve: 1, else 0) and when that may change (ms, 0: only by a write). ARGV: tenant
# prefix, now (ms), `members:` prefix, `links:` prefix, `company:` prefix, company id...
# Returns {rev, gen, stamp, {group id, active, boundary} per company}.
APPROVAL_GROUPS = (
    SNAPSHOT
    + _APPROVING
    + """for a = 6, #ARGV do
  local item = {'', 0, 0}
  local raw = redis.call('GET', base .. ARGV[5] .. ARGV[a])
  if raw then
    local group = cjson.decode(raw).approval_group
    if type(group) == 'string' and group ~= '' then
      local found, boundary = approving(group, false)
      item = {group, #found, boundary}
    end
  end
  out[#out + 1] = item
end
return out
"""
)

# What a purchase is decided on, in one round trip (SPEC sections 1 and 5): the company and
# its ancestors up to the nearest that set what it does not (its account limit; its approval
# rules, when some company of the tenant sets rules at all), and the members who may approve
# now (`_APPROVING`) of every group the decision may name: the company's admin and buyer
# groups, its approval group, the groups of the nearest approval rules' tiers, and the groups
# given. ARGV: tenant prefix, now (ms), `members:` prefix, `links:` prefix, `company:` prefix,
# `rulesets` suffix, company id, its four predefined group ids (admin, contact, buyer,
# requester), more group ids... Returns {rev, gen, stamp, {company json, ancestor json...},
# {group id...}, {member...} per group}; the company list is empty when there is no such
# company; {false}: no tenant. With more KEYS: KEYS[2] a budgets hash (or KEYS[1]: none) and
# spend totals, whole keys outside the generations (engine/spend.py); then also {totals},
# {budgets HGETALL}.
PURCHASE = (
    SNAPSHOT
    + _APPROVING
    + """local cpre, company = ARGV[5], ARGV[7]
local raw = redis.call('GET', base .. cpre .. company)
if not raw then
  out[#out + 1] = {}; out[#out + 1] = {}; out[#out + 1] = {}
  return out
end
local function set(v) return v ~= nil and v ~= cjson.null end
local roles = {admin = ARGV[8], contact = ARGV[9], buyer = ARGV[10], requester = ARGV[11]}
local wanted, order = {}, {}
local function want(g)
  if not wanted[g] then wanted[g] = true; order[#order + 1] = g end
end
want(ARGV[8]); want(ARGV[10])
for a = 12, #ARGV do want(ARGV[a]) end
local body = cjson.decode(raw)
if type(body.approval_group) == 'string' and body.approval_group ~= '' then
  want(body.approval_group)
end
local chain = {raw}
local need_limit = not set(body.account_limit)
local need_rules = redis.call('SCARD', base .. ARGV[6]) > 0
local rules = nil
if set(body.approval_rules) then rules = body.approval_rules; need_rules = false end
local seen = {[company] = true}
local parent = body.parent
while (need_limit or need_rules) and type(parent) == 'string' and not seen[parent] do
  seen[parent] = true
  local found = redis.call('GET', base .. cpre .. parent)
  if not found then break end
  chain[#chain + 1] = found
  local up = cjson.decode(found)
  if set(up.account_limit) then need_limit = false end
  if need_rules and set(up.approval_rules) then rules = up.approval_rules; need_rules = false end
  parent = up.parent
end
if rules then
  for _, rule in ipairs(rules) do
    for _, tier in ipairs(rule.tiers) do
      for _, names in ipairs(tier) do
        for _, name in ipairs(names) do want(roles[name] or name) end
      end
    end
  end
end
local members = {}
for i, g in ipairs(order) do members[i] = (approving(g, false)) end
out[#out + 1] = chain
out[#out + 1] = order
out[#out + 1] = members
if #KEYS > 1 then
  -- KEYS[2] the budgets hash (KEYS[1] for none), then spend totals (`Graphs.purchase`).
  if #KEYS > 2 then out[#out + 1] = redis.call('MGET', unpack(KEYS, 3)) else out[#out + 1] = {} end
  if KEYS[2] ~= KEYS[1] then
    out[#out + 1] = redis.call('HGETALL', KEYS[2])
  else
    out[#out + 1] = {}
  end
end
return out
"""
)
