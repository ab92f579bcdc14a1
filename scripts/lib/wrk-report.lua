-- wrk hooks shared by the bench scripts (scripts/bench-http.sh,
-- scripts/bench-peers.sh): number the threads, and print the summary as
-- "RESULT <prefix>_<name>=<value>" lines. A script appends its own init()
-- and request(); init() sets the globals `prefix` and `per_request`.

-- setup() and done() run in the main Lua state, init() and request() in
-- each thread's: setup numbers the threads and keeps them, so that done()
-- can read what init() set (the result prefix, events per request).
local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
end
function done(summary, latency, requests)
  report(threads[1]:get("prefix"), summary, latency, threads[1]:get("per_request"))
end

-- Prints what the summary needs; latency in ms, rates per second.
function report(prefix, summary, latency, per_request)
  local s = summary.duration / 1e6
  local e = summary.errors
  local ok = summary.requests - e.status
  local function p(name, v) io.write(string.format("RESULT %s_%s=%s\n", prefix, name, v)) end
  p("requests", summary.requests)
  p("ok", ok)
  p("secs", string.format("%.2f", s))
  p("req_per_s", string.format("%.0f", ok / s))
  p("events_per_s", string.format("%.0f", ok * per_request / s))
  p("mb_per_s", string.format("%.1f", summary.bytes / s / 1e6))
  p("errors", string.format("connect %d, read %d, write %d, status %d, timeout %d",
    e.connect, e.read, e.write, e.status, e.timeout))
  p("bad", e.connect + e.read + e.write + e.status + e.timeout)
  for _, q in ipairs({50, 90, 99, 99.9}) do
    p("p" .. tostring(q):gsub("%.", "_"), string.format("%.2f", latency:percentile(q) / 1000))
  end
  p("mean", string.format("%.2f", latency.mean / 1000))
  p("max", string.format("%.2f", latency.max / 1000))
end
