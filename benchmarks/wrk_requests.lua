-- wrk script for benchmarks/harness.py: requests read from a file, one per line,
-- "METHOD<TAB>PATH<TAB>BODY<TAB>Header: value<TAB>Header: value ...".
-- Arguments (after --): the file, "once" or "cycle", the number of wrk threads, and
-- optionally a pause in milliseconds before each request of a connection (pacing).
-- once: each line is sent exactly once (thread n takes lines n, n+threads, ...), and a
--       thread stops when its lines are answered; cycle: lines repeat until -d runs out.
-- done() prints one JSON line: requests, duration, latency percentiles and status counts.

local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

-- Wall clock in seconds (LuaJIT has none finer than os.time); called twice per thread.
local function now()
  local pipe = io.popen("date +%s.%N")
  local value = tonumber(pipe:read("*l"))
  pipe:close()
  return value
end

local function split(line, sep)
  local fields = {}
  for field in (line .. sep):gmatch("(.-)" .. sep) do
    table.insert(fields, field)
  end
  return fields
end

function init(args)
  local path, mode, nthreads = args[1], args[2], tonumber(args[3])
  requests_path = path
  pause_ms = tonumber(args[4] or "0")
  once = (mode == "once")
  reqs = {}
  local n = 0
  for line in io.lines(path) do
    if (n % nthreads) == (id - 1) then
      local f = split(line, "\t")
      local headers = {}
      for i = 4, #f do
        local name, value = f[i]:match("^([^:]+):%s*(.*)$")
        if name then headers[name] = value end
      end
      local body = f[3] ~= "" and f[3] or nil
      table.insert(reqs, wrk.format(f[1], f[2], headers, body))
    end
    n = n + 1
  end
  sent = 0
  answered = 0
  -- wrk calls request() once more on its first thread before the run, to check it.
  verify_call = (id == 1)
  statuses = {}
  -- wrk runs for the whole -d even when every thread has stopped: "once" runs are timed
  -- from the threads' start to their last answer instead.
  started_at = now()
  finished_at = 0
end

-- once: a connection with nothing left to send waits (the thread stops meanwhile).
function delay()
  if once and sent >= #reqs then
    return 60000
  end
  return pause_ms
end

function request()
  if verify_call then
    verify_call = false
    return reqs[1]
  end
  sent = sent + 1
  if once and sent > #reqs then
    -- Only after the 60 s delay, i.e. never in a run that finishes: a harmless 404.
    return wrk.format("GET", "/wrk-nothing-left/")
  end
  return reqs[((sent - 1) % #reqs) + 1]
end

function response(status, headers, body)
  if once and status == 404 then
    return
  end
  answered = answered + 1
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if once and answered == #reqs then
    finished_at = now()
    -- The driver interrupts wrk (which would otherwise wait out -d) once every thread is done.
    local marker = io.open(requests_path .. ".done." .. id, "w")
    marker:write("done\n")
    marker:close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local merged = {}
  local first, last = nil, 0
  for _, thread in ipairs(threads) do
    local t0, t1 = thread:get("started_at"), thread:get("finished_at")
    if first == nil or t0 < first then first = t0 end
    if t1 > last then last = t1 end
    local s = thread:get("statuses")
    for k, v in pairs(s) do merged[k] = (merged[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(merged) do table.insert(parts, string.format('"%s": %d', k, v)) end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"span_us": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    last > 0 and (last - first) * 1e6 or 0, table.concat(parts, ", ")))
end
