"""The Lua scripts of approval flows (`store/flows.py`): each change is one atomic script.

Like the graph's scripts, each takes the tenant's `meta` key as KEYS[1] (the slot of every
key of the tenant, see keys.py). A flow change bumps the tenant's revision, records its
stamp and appends its event to the tenant's stream in the same script (scripts.EMIT), so
the revision is also the consistency token of flows: "nothing changed since revision R"
covers the graph and every flow at once.
"""

from __future__ import annotations

from groupgate.store.scripts import EMIT

# Create a flow unless the requester's Idempotency-Key already made one.
# ARGV: 1 expected rev (the evaluation's), 2 flow key, 3 idempotency key, 4 its ttl (ms),
# 5 pending index, 6 company index, 7 requester index, 8 flow id, 9 expiry (ms), 10 stamp,
# 11-15 event (stream, maxlen, type, head, tail), 16... field, value pairs of the flow.
# Returns {'existing', id} | {'conflict'} | {'created', rev}.
CREATE = (
    EMIT
    + """
local found = redis.call('GET', ARGV[3])
if found then return {'existing', found} end
local rev = redis.call('HGET', KEYS[1], 'rev')
if rev ~= ARGV[1] then return {'conflict'} end
emit(ARGV[11], ARGV[12], tonumber(rev) + 1, 1, ARGV[13], ARGV[14], ARGV[15])
local fields = {}
for i = 16, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', ARGV[2], unpack(fields))
redis.call('ZADD', ARGV[5], ARGV[9], ARGV[8])
redis.call('ZADD', ARGV[6], 0, ARGV[8])
redis.call('ZADD', ARGV[7], 0, ARGV[8])
redis.call('SET', ARGV[3], ARGV[8], 'PX', ARGV[4])
redis.call('HSET', KEYS[1], 'stamp', ARGV[10])
return {'created', redis.call('HINCRBY', KEYS[1], 'rev', 1)}
"""
)

# Change a pending flow. A flow past its expiry becomes EXPIRED instead, whatever was asked.
# ARGV: 1 flow key, 2 action (approve | decline | cancel | expire), 3 expected rev ('': any),
# 4 now (ms), 5 stamp, 6 pending index, 7 company index, 8 flow id, 9 subject (cancel: must
# be the requester), 10 expected tier ('': any), 11 the status after the change,
# 12-16 the expiry event (stream, maxlen, type, head, tail), 17 ended-at text,
# 18-22 the change's event, 23... field, value pairs the change sets.
# Returns {'missing'} | {'status', status} | {'expired', rev} | {'pending'} | {'conflict'}
# | {'not_requester'} | {'done', rev}.
TRANSITION = (
    EMIT
    + """
if not redis.call('HGET', KEYS[1], 'gen') then return {'missing'} end
local f = ARGV[1]
local status = redis.call('HGET', f, 'status')
if not status then return {'missing'} end
if status ~= 'PENDING' then return {'status', status} end
-- The event is the first write of a change: should it fail (a full memory refuses the first
-- write), nothing of the change is written either (Redis does not roll a failed script back).
local function bump()
  redis.call('HSET', KEYS[1], 'stamp', ARGV[5])
  return redis.call('HINCRBY', KEYS[1], 'rev', 1)
end
local function close()
  redis.call('ZREM', ARGV[6], ARGV[8])
  redis.call('ZREM', ARGV[7], ARGV[8])
  return bump()
end
local next_rev = tonumber(redis.call('HGET', KEYS[1], 'rev')) + 1
if tonumber(ARGV[4]) >= tonumber(redis.call('HGET', f, 'expires_ms')) then
  emit(ARGV[12], ARGV[13], next_rev, 1, ARGV[14], ARGV[15], ARGV[16])
  redis.call('HSET', f, 'status', 'EXPIRED', 'ended_ms', ARGV[4], 'ended_at', ARGV[17])
  return {'expired', close()}
end
if ARGV[2] == 'expire' then return {'pending'} end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'rev') ~= ARGV[3] then return {'conflict'} end
if ARGV[10] ~= '' and redis.call('HGET', f, 'tier') ~= ARGV[10] then return {'conflict'} end
if ARGV[2] == 'cancel' and redis.call('HGET', f, 'requester') ~= ARGV[9] then
  return {'not_requester'}
end
emit(ARGV[18], ARGV[19], next_rev, 1, ARGV[20], ARGV[21], ARGV[22])
local fields = {'status', ARGV[11]}
for i = 23, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', f, unpack(fields))
if ARGV[11] == 'PENDING' then return {'done', bump()} end
return {'done', close()}
"""
)

# Read a flow and the graph data its eligibility starts from, at one revision: its company's
# JSON, the delegations, and links of subjects.
# ARGV: 1 tenant prefix, 2 flow key, 3 the company suffix prefix, 4 delegations suffix,
# 5... links suffixes (subjects whose links are wanted).
# Returns {rev, gen, stamp, flow fields, company json, delegations, links...}; {false}: no
# tenant.
CONTEXT = """
local rev = redis.call('HGET', KEYS[1], 'rev')
local gen = redis.call('HGET', KEYS[1], 'gen')
if not gen then return {false} end
local stamp = redis.call('HGET', KEYS[1], 'stamp') or ''
local base = ARGV[1] .. gen .. ':'
local flow = redis.call('HGETALL', ARGV[2])
local company = ''
local owner = redis.call('HGET', ARGV[2], 'company')
if owner then company = redis.call('GET', base .. ARGV[3] .. owner) or '' end
local out = {rev, gen, stamp, flow, company, redis.call('HGETALL', base .. ARGV[4])}
for i = 5, #ARGV do out[#out + 1] = redis.call('HGETALL', base .. ARGV[i]) end
return out
"""

# The members of groups with their link to each, and the links of subjects, at one revision.
# ARGV: 1 tenant prefix, 2 the members suffix prefix, 3 the links suffix prefix, 4 the
# number of groups n, 5...4+n group ids, then subject ids.
# Returns {rev, {member, link, ...} per group..., {group, link, ...} per subject...}.
MEMBERS = """
local rev = redis.call('HGET', KEYS[1], 'rev')
local gen = redis.call('HGET', KEYS[1], 'gen')
if not gen then return {false} end
local base = ARGV[1] .. gen .. ':'
local n = tonumber(ARGV[4])
local out = {rev}
for i = 5, 4 + n do
  local g = ARGV[i]
  local flat = {}
  for _, m in ipairs(redis.call('SMEMBERS', base .. ARGV[2] .. g)) do
    flat[#flat + 1] = m
    flat[#flat + 1] = redis.call('HGET', base .. ARGV[3] .. m, g) or ''
  end
  out[#out + 1] = flat
end
for i = 5 + n, #ARGV do out[#out + 1] = redis.call('HGETALL', base .. ARGV[3] .. ARGV[i]) end
return out
"""
