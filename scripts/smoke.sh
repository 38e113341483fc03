#!/bin/bash
# The README's first steps on a fresh machine: `make run`, then the original endpoint's cases.
# Used by `make test-vm` (a fresh Debian 12 with cgroup v2); exits non-zero on any difference.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${EXECBOX_PORT:-8081}
log=$(mktemp)
make run >"$log" 2>&1 &
runner=$!
trap 'kill "$runner" 2>/dev/null; pkill -P "$runner" 2>/dev/null; wait "$runner" 2>/dev/null || true' EXIT
deadline=$((SECONDS + ${SMOKE_TIMEOUT_S:-3600}))
until curl -sf "localhost:$port/healthz" >/dev/null; do
    if ! kill -0 "$runner" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
        tail -40 "$log"; echo "smoke: the service did not come up" >&2; exit 1
    fi
    sleep 2
done
echo "smoke: serving after ${SECONDS}s"
check() {
    local body=$1 expected=$2 got
    got=$(curl -s "localhost:$port/" -d "$body")
    if [ "$got" != "$expected" ]; then
        echo "smoke: $body -> $got (expected $expected)" >&2; exit 1
    fi
    echo "smoke: ok $got"
}
check '{"lang":"python","code":"print(\"Hello world!\")"}' '{"output":"Hello world!","error":false,"status":"ok"}'
check '{"lang":"go","code":"package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"go\") }"}' '{"output":"go","error":false,"status":"ok"}'
check '{"lang":"bash","code":"echo oops >&2; exit 3"}' '{"output":"oops","error":true,"status":"runtime_error"}'
check '{"lang":"javascript","code":"console.log(6*7)"}' '{"output":"42","error":false,"status":"ok"}'
curl -s "localhost:$port/api/v1/execute" -d '{"language":"python","code":"x = bytearray(400 << 20)","limits":{"memory_mb":64}}' | grep -q '"memory_limit"' \
    && echo "smoke: ok memory limit" || { echo "smoke: memory limit not reported" >&2; exit 1; }
