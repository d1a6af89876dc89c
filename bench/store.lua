-- wrk script for POST /api/v1/events: each thread alternates a start and the
-- finish that closes it (paired by component), so the load exercises both
-- inserts and the pairing update, and never sends an invalid event.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = id
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local component = string.format("bench-%d-%d", thread_id, math.floor(counter / 2) % 1000)
  local body
  if counter % 2 == 0 then
    body = string.format('{"component":"%s","phase":"start"}', component)
  else
    body = string.format('{"component":"%s","phase":"finish","status":"success"}', component)
  end
  counter = counter + 1
  return wrk.format(nil, "/api/v1/events", nil, body)
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  local socket_errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "per_second": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, non2xx, socket_errors))
end
