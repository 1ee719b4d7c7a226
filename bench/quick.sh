#!/usr/bin/env bash
# Quick side-by-side load test: small non-stream chat completions, direct to the mock provider
# and through sluice, in the same run, with wrk (apt-get install -y wrk).
#   bench/quick.sh [DURATION_SECONDS] [CONNECTIONS]
# Prints requests/s and latency percentiles for both, and sluice's figures as ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONNS=${2:-64}
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q --bins
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
export SLUICE_BENCH_KEY=sk-bench-key
./target/release/sluice-mock --listen 127.0.0.1:19999 --gap-ms 0 >/dev/null &
cat > "$work/sluice.yaml" <<YAML
listen: 127.0.0.1:18080
admin: { listen: 127.0.0.1:19091 }
keys: [ { name: bench, key: "\${SLUICE_BENCH_KEY}" } ]
providers: { mock: { kind: openai_compatible, base_url: "http://127.0.0.1:19999/v1" } }
models: { gpt-4o-mini: [ { provider: mock, model: mock-model } ] }
server: { pid_file: $work/pid, upgrade_sock: $work/sock }
YAML
RUST_LOG=warn ./target/release/sluice run -c "$work/sluice.yaml" &
for _ in $(seq 50); do curl -s -o /dev/null 127.0.0.1:19091/healthz && break; sleep 0.1; done
run() { wrk -t2 -c"$CONNS" -d"${DUR}s" --latency -s bench/post.lua "$1" | grep RESULT; }
echo "machine: $(nproc) cores, $(uname -m); ${DUR}s per run, ${CONNS} connections"
direct=$(run http://127.0.0.1:19999/v1/chat/completions)
via=$(run http://127.0.0.1:18080/v1/chat/completions)
echo "direct to mock: $direct"
echo "through sluice: $via"
get() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$2"; }
awk -v dr="$(get rps "$direct")" -v vr="$(get rps "$via")" \
    -v d50="$(get p50_us "$direct")" -v v50="$(get p50_us "$via")" \
    -v d99="$(get p99_us "$direct")" -v v99="$(get p99_us "$via")" \
    'BEGIN { printf "sluice/direct: throughput %.2fx, p50 latency %.2fx, p99 latency %.2fx\n", vr/dr, v50/d50, v99/d99 }'
