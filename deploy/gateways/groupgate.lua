-- groupgate forward-auth for HAProxy 2.6 or later: a Lua action over core.httpclient, no
-- extra modules. Used by haproxy.cfg (beside it):
--
--     http-request lua.groupgate 127.0.0.1:8181
--
-- The action asks groupgate's /v1/gateway/auth about the request with headers it writes
-- itself: X-Original-Method and X-Original-URI (the method and the raw path and query), and
-- the client's Authorization, X-Groupgate-Key and X-Groupgate-Min-Revision, every copy (so
-- groupgate refuses repeated ones). No other client header is sent, so a client's
-- X-Original-* or X-Forwarded-* never reaches groupgate. Run groupgate with
-- GROUPGATE_GATEWAY_KIND=haproxy.
--
-- It always deletes the client's X-Groupgate-Subject and X-Groupgate-Tenant, sets them from
-- a 200 answer, and leaves the answer's status in txn.groupgate_status (and a 401's
-- challenge in txn.groupgate_challenge) for haproxy.cfg to deny anything but 200. A failed
-- call leaves the status unset: denied too.

local FORWARDED = { "authorization", "x-groupgate-key", "x-groupgate-min-revision" }
local IDENTITY = { "X-Groupgate-Subject", "X-Groupgate-Tenant" }

-- The values of one header as a list. HAProxy 2.6 indexes header values from 0, later
-- versions from 1: accept both.
local function values(found)
  local out = {}
  if found == nil then
    return out
  end
  local i = found[0] ~= nil and 0 or 1
  while found[i] ~= nil do
    out[#out + 1] = found[i]
    i = i + 1
  end
  return out
end

local function lookup(headers, name)
  return values(headers[name] or headers[string.lower(name)])
end

core.register_action("groupgate", { "http-req" }, function(txn, address)
  local http = txn.http
  for _, name in ipairs(IDENTITY) do
    http:req_del_header(name)
  end
  local incoming = http:req_get_headers()
  local headers = {
    ["X-Original-Method"] = { txn.sf:method() },
    ["X-Original-URI"] = { txn.sf:pathq() },
  }
  for _, name in ipairs(FORWARDED) do
    local found = values(incoming[name])
    if #found > 0 then
      headers[name] = found
    end
  end
  local client = core.httpclient()
  local ok, answer = pcall(client.get, client, {
    url = "http://" .. address .. "/v1/gateway/auth",
    headers = headers,
    timeout = 5000,
  })
  if not ok or answer == nil or answer.status == nil then
    txn:Warning("groupgate: no answer from " .. address .. ": " .. tostring(answer))
    return
  end
  local status = answer.status
  if status == 200 then
    for _, name in ipairs(IDENTITY) do
      local found = lookup(answer.headers, name)
      if #found ~= 1 then
        txn:Warning("groupgate: a 200 without exactly one " .. name)
        return
      end
      http:req_set_header(name, found[1])
    end
  elseif status == 401 then
    local challenge = lookup(answer.headers, "WWW-Authenticate")
    txn:set_var("txn.groupgate_challenge", challenge[1] or 'Bearer realm="groupgate"')
  end
  txn:set_var("txn.groupgate_status", status)
end, 1)
