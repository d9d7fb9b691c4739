#!/usr/bin/env bash
# Prints what a publish costs Redis (BENCHMARKS.md, "Redis cost per publish"): runs
# TestRedisCostPerPublish with its two crier nodes, its clients and the test itself on
# core 0 and redis-server alone on core 1, as Redis would run on a machine of its own.
# On a shared 2-core VM, Redis preempted by the nodes counts their cache misses and
# interrupted commands as its own CPU.
#
#   loadtest/rediscost.sh                              # 16 publishers, AOF everysec
#   CRIER_BENCH_PUBLISHERS=64 loadtest/rediscost.sh
#   CRIER_BENCH_AOF=no loadtest/rediscost.sh           # Redis as a pure bus
#   CRIER_COMMIT=2754d16 loadtest/rediscost.sh         # crier as of a commit
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
src=.
if [ -n "${CRIER_COMMIT:-}" ]; then
  src=$out/src && mkdir -p "$src"
  git archive "$CRIER_COMMIT" | tar -x -C "$src"
fi
(cd "$src" && go test -c -o "$out/cluster.test" ./e2e/cluster/)

pin0=() pin1=(true)
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin0=(taskset -c 0) pin1=(taskset -apc 1)
fi
before=$(pgrep -d, redis-server || true)
(
  # The test starts its own redis-server: move it to core 1 once it is there.
  for _ in $(seq 1 200); do
    for p in $(pgrep redis-server); do
      case ",$before," in *",$p,"*) ;; *) "${pin1[@]}" "$p" >/dev/null && exit 0 ;; esac
    done
    sleep 0.05
  done
) &
cd "$src/e2e/cluster"
CRIER_BENCH=1 "${pin0[@]}" "$out/cluster.test" -test.run 'RedisCostPerPublish' -test.v -test.count 1 |
  awk '!/: calls=/ || / (evalsha|xread): calls=/' | grep -v '^=== RUN'
