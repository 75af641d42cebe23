-- wrk script: POST /orders with a Bearer key and a JSON body cycling over seeded customer ids.
--   BENCH_KEY=... BENCH_CUSTOMER_IDS=ids.txt wrk -t2 -c500 -d30s -s bench/post_orders.lua \
--     http://127.0.0.1:8000/orders
-- BENCH_CUSTOMER_IDS names a file with one customer id a line. done() prints one JSON line
-- (prefixed {"wrk": ...}) that bench/_support.py parses: requests, non-2xx, socket errors.
--
-- BENCH_RATE_PER_THREAD (requests per second, optional) paces each thread: its k-th request
-- is due at start + k / rate, and delay() holds a connection until the next due time. A
-- fixed rate as long as a connection is free; with all of them waiting for answers, the late
-- requests go out at once when one comes back. Without it, every connection sends as fast as
-- it gets answers.

local key = os.getenv("BENCH_KEY") or ""
local ids_file = os.getenv("BENCH_CUSTOMER_IDS")

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local now_ts = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_ts)
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end

local rate = tonumber(os.getenv("BENCH_RATE_PER_THREAD") or "")
local paced_start = nil
local paced_count = 0

local ids = {}
local offset = 0
local counter = 0
local threads = {}

local function load_ids()
  if ids_file == nil then
    ids = {1}
    return
  end
  for line in io.lines(ids_file) do
    local id = tonumber(line)
    if id then ids[#ids + 1] = id end
  end
end

-- setup runs in the main Lua state, once per thread: give each thread its own starting point
-- so that the threads do not send the same customer at the same moment.
function setup(thread)
  thread:set("thread_index", #threads)
  threads[#threads + 1] = thread
end

function init(args)
  load_ids()
  offset = (thread_index or 0) * 7919
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. key
end

if rate then
  function delay()
    local now = now_ms()
    paced_start = paced_start or now
    local due = paced_start + paced_count * 1000 / rate
    paced_count = paced_count + 1
    return math.max(0, math.floor(due - now + 0.5))
  end
end

function request()
  counter = counter + 1
  local n = counter + offset
  local id = ids[(n % #ids) + 1]
  local body = string.format('{"customer_id": %d, "sku": "BENCH-%d", "quantity": %d}',
                              id, n % 100, n % 5 + 1)
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"wrk": {"requests": %d, "duration_us": %d, "non_2xx": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d}}}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
