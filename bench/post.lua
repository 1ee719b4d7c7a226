-- wrk script: POST a small non-stream chat completion.
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer " .. (os.getenv("SLUICE_BENCH_KEY") or "sk-bench-key")
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}'

done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_us=%d p99_us=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
