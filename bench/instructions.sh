#!/usr/bin/env bash
# Instructions sluice executes per request and per streamed event, counted by callgrind.
#
#   bench/instructions.sh [BUILD_DIR ...]     (default: target/release)
#
# Each BUILD_DIR holds a `sluice` and a `sluice-mock`. sluice runs under
# `valgrind --tool=callgrind` in front of the mock; after a warm-up the counters are zeroed,
# 1,000 small completions are sent one after another on one keep-alive connection, the
# counters dumped, then 200 streams (25 events each) likewise. Only sluice's user-space
# instructions are counted (not the kernel's, not the clients' or the mock's), and the count
# does not depend on the machine's load: two runs of one build agree within ~0.1 %, where
# timed runs on a shared 2-core box move by ±10 %. It tells whether a change made sluice do
# less work, not how much faster it is: the bench's timed scenarios say that.
#
# Needs valgrind (Debian package `valgrind`) and python3. The callgrind files are kept in
# the output directory (`$OUT`, default bench/results/instructions) for
# `callgrind_annotate --inclusive=yes FILE`. (Under valgrind, SHA-256 runs without the
# CPU's SHA extensions: key hashing counts more than it costs on the machine.)
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/instructions}
SMALL=${SMALL:-1000}
STREAMS=${STREAMS:-200}
command -v valgrind > /dev/null || { echo "needs valgrind: apt-get install -y valgrind" >&2; exit 2; }
[ $# -gt 0 ] || set -- target/release
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

client() { # client PORT MODE N: N requests on one connection; prints the events streamed
    python3 - "$@" << 'EOF'
import http.client, json, sys
port, mode, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
body = json.dumps({"model": "gpt-4o-mini", "max_tokens": 16, "stream": mode == "stream",
                   "messages": [{"role": "user", "content": "Say hello to the gateway."}]})
conn = http.client.HTTPConnection("127.0.0.1", port)
head = {"authorization": "Bearer sk-bench-instructions-key", "content-type": "application/json"}
events = 0
for _ in range(n):
    conn.request("POST", "/v1/chat/completions", body, head)
    answer = conn.getresponse()
    data = answer.read()
    if answer.status != 200:
        sys.exit(f"status {answer.status}: {data[:300]!r}")
    events += data.count(b"data: ")
print(events)
EOF
}

REPLY="Hello from the mock provider, a short answer of some twenty words for the bench to relay back to the client now."

measure() { # measure BUILD_DIR LABEL
    local dir=$1 label=$2
    local mock_port gw_port admin_port work
    mock_port=$(free_port); gw_port=$(free_port); admin_port=$(free_port)
    work=$(mktemp -d)
    cat > "$work/sluice.yaml" << EOF
listen: 127.0.0.1:$gw_port
admin: { listen: 127.0.0.1:$admin_port }
allow_inline_secrets: true
keys: [ { name: bench, key: sk-bench-instructions-key } ]
providers:
  mock: { kind: openai_compatible, base_url: "http://127.0.0.1:$mock_port/v1" }
models:
  gpt-4o-mini:
    - { provider: mock, model: mock-model }
server: { pid_file: $work/pid, upgrade_sock: $work/sock, grace_period: 1s, graceful_shutdown_timeout: 1s }
EOF
    "$dir/sluice-mock" --listen "127.0.0.1:$mock_port" --ttft-ms 0 --gap-ms 0 --reply "$REPLY" > /dev/null 2>&1 &
    local mock=$!
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$label.%p.out" \
        "$dir/sluice" run -c "$work/sluice.yaml" > "$work/sluice.log" 2>&1 &
    local gw=$!
    for _ in $(seq 1 240); do
        curl -sf -o /dev/null "http://127.0.0.1:$admin_port/healthz" && break
        sleep 0.5
    done
    client "$gw_port" small 300 > /dev/null
    client "$gw_port" stream 50 > /dev/null
    callgrind_control -z "$gw" > /dev/null 2>&1
    client "$gw_port" small "$SMALL" > /dev/null
    callgrind_control -d small "$gw" > /dev/null 2>&1
    callgrind_control -z "$gw" > /dev/null 2>&1
    local events
    events=$(client "$gw_port" stream "$STREAMS")
    callgrind_control -d stream "$gw" > /dev/null 2>&1
    kill "$gw" "$mock" 2> /dev/null || true
    wait "$gw" "$mock" 2> /dev/null || true
    local small stream
    small=$(grep -h '^summary:' "$OUT/$label.$gw.out.1" | awk '{print $2}')
    stream=$(grep -h '^summary:' "$OUT/$label.$gw.out.2" | awk '{print $2}')
    rm -rf "$work"
    echo "$label $small $stream $events"
}

printf '%-28s %16s %16s %16s\n' build "per small request" "per stream" "per event"
i=0
for dir in "$@"; do
    i=$((i + 1))
    read -r label small stream events < <(measure "$dir" "build$i")
    printf '%-28s %16d %16d %16d\n' "$dir" $((small / SMALL)) $((stream / STREAMS)) $((stream / events))
done
echo "callgrind files: $OUT"
