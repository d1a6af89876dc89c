-- wrk script for GET /healthz: the HTTP ceiling of the same server.
function done(summary, latency, requests)
  io.write(string.format('{"requests": %d, "per_second": %.1f, "p50_ms": %.3f, "p99_ms": %.3f}\n',
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
