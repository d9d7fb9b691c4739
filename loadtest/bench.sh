#!/usr/bin/env bash
# Reproduces one figure of BENCHMARKS.md with one command: builds crier and the load tool,
# starts a fresh crier pinned to core 0 on a free loopback port with the flags the scenario
# needs, runs the scenario pinned to core 1, prints its JSON line and stops crier.
#
#   loadtest/bench.sh <scenario> [loadtest flags...]
#   loadtest/bench.sh fanout -streams 2000 -duration 10s
#   RUNS=3 loadtest/bench.sh idle          # three runs, each on a fresh server
#   CRIER_FLAGS="-buffer 1024" loadtest/bench.sh saturate
#   CRIER_COMMIT=b0b26b9 loadtest/bench.sh fanout   # crier as of a commit (the tool stays as is)
#   SPIN=1 loadtest/bench.sh overload -rate 2000    # a busy loop shares crier's core
#
# SPIN=n runs n busy loops on crier's core for the run, so that crier, not the tool,
# is the bottleneck: one core of this tool reads fewer events per second than one core
# of crier writes, and a tool that falls behind is a slow client, which crier cuts off.
#
# Without CRIER_COMMIT crier is built from the working tree, uncommitted changes included.
#
# Needs taskset (util-linux) and 2 cores; on one core it runs unpinned.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 # the Go crier is pinned to (go.mod); a commit before the pin builds with it too

scenario=${1:?usage: loadtest/bench.sh <scenario> [flags...]}
shift
runs=${RUNS:-1}
out=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$out"

if [ -n "${CRIER_COMMIT:-}" ]; then
  rm -rf "$out/src" && mkdir -p "$out/src"
  git archive "$CRIER_COMMIT" | tar -x -C "$out/src"
  (cd "$out/src" && go build -o "$out/crier" .)
  built="commit $(git rev-parse --short "$CRIER_COMMIT")"
else
  go build -o "$out/crier" .
  built="working tree at $(git rev-parse --short HEAD)"
  [ -z "$(git status --porcelain -- '*.go')" ] || built="$built plus uncommitted changes"
fi
go build -o "$out/loadtest" ./loadtest

# Server on core 0, tool on core 1, when there are two cores to pin to.
pin0=() pin1=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin0=(taskset -c 0) pin1=(taskset -c 1)
fi

presence=false
[ "$scenario" = presence ] || [ "$scenario" = herd ] || [ "$scenario" = smoke ] && presence=true

for run in $(seq 1 "$runs"); do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000)))
  # shellcheck disable=SC2086 # CRIER_FLAGS is a list of flags
  "${pin0[@]}" "$out/crier" -addr "127.0.0.1:$port" -publish-token bench -presence=$presence \
    -log-level warn ${CRIER_FLAGS:-} >"$out/crier-$run.log" 2>&1 &
  pid=$!
  spinners=()
  for _ in $(seq 1 "${SPIN:-0}"); do
    "${pin0[@]}" sh -c 'while :; do :; done' &
    spinners+=($!)
  done
  trap 'kill $pid "${spinners[@]}" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo "bench: run $run/$runs: crier ($built) pid $pid on port $port (-presence=$presence ${CRIER_FLAGS:-}, ${SPIN:-0} busy loops beside it), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  "${pin1[@]}" "$out/loadtest" "$scenario" -target "http://127.0.0.1:$port" -token bench -pid "$pid" "$@" |
    tee -a "$out/results.jsonl"
  kill "$pid" "${spinners[@]}" 2>/dev/null || true
  wait "$pid" "${spinners[@]}" 2>/dev/null || true
  trap - EXIT
done
echo "bench: results in $out/results.jsonl" >&2
