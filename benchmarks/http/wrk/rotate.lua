-- Rotate through a pre-generated request list; print the figures as one JSON line in done().
--
--   wrk -t2 -c32 -d10s --latency -s rotate.lua http://127.0.0.1:PORT -- /abs/path/list.lua
--
-- The list (written by benchmarks/http/workload.py) is a Lua file returning
--   {headers = {...common...}, requests = {{method, path, headers-or-nil, body-or-nil}, ...}}.
-- Every request is formatted once in init(); request() only hands out the next string, so
-- wrk's own cost per request stays what it is without a script. Each thread starts at its
-- own offset so that threads do not send the same request at the same moment.
-- done() prints `WRK_JSON {...}` with requests/s and latency percentiles in microseconds
-- (wrk's latency:percentile()); benchmarks/http/wrkrun.py parses that line.

local threads = 0

function setup(thread)
   thread:set("thread_index", threads)
   threads = threads + 1
end

local formatted = {}
local count = 0
local position = 0

function init(args)
   local file = args[1]
   if file == nil then
      error("rotate.lua: pass the request list after --, e.g. -- /tmp/list.lua")
   end
   local list = dofile(file)
   local common = list.headers or {}
   for _, entry in ipairs(list.requests) do
      local headers = {}
      for name, value in pairs(common) do
         headers[name] = value
      end
      if entry[3] ~= nil then
         for name, value in pairs(entry[3]) do
            headers[name] = value
         end
      end
      count = count + 1
      formatted[count] = wrk.format(entry[1], entry[2], headers, entry[4])
   end
   if count == 0 then
      error("rotate.lua: the request list " .. file .. " is empty")
   end
   local index = thread_index or 0
   position = (index * 7919) % count
end

function request()
   position = position + 1
   if position > count then
      position = 1
   end
   return formatted[position]
end

function done(summary, latency, requests)
   local e = summary.errors
   local seconds = summary.duration / 1000000
   io.write(string.format(
      'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "rps": %.2f, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"mean": %.1f, "stdev": %.1f, "min": %d, "max": %d, ' ..
      '"p50": %d, "p90": %d, "p99": %d, "p99.9": %d}}\n',
      summary.requests, summary.duration, summary.bytes, summary.requests / seconds,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.stdev, latency.min, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9)))
end
