#!/usr/bin/env bash
# The README's test command: installs what the tests need, then gofmt, go vet and every
# test under the race detector. With CI=true a missing tool fails the tests instead of
# skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."
# The patched Go that crier is built and tested with (go.mod's toolchain line). The go command
# fetches it from the module proxy once; a machine's own Go ignores go.mod's version.
export GOTOOLCHAIN=go1.27.3

bash scripts/deps.sh

bad=$(gofmt -l . | grep -v '^vendor/' || true)
if [ -n "$bad" ]; then
  echo "gofmt would change:" >&2
  echo "$bad" >&2
  exit 1
fi
go vet ./...
go test -race -count=1 -timeout 30m ./...

# The browser client's logic that needs no browser, with Node's built-in test runner.
node --test clients/js/test/*.test.js

# Known vulnerabilities in what crier calls, standard library included. The public feed is
# out of reach here, so govulncheck reads an offline copy of the database made from the
# OSV files of the golang.org/x/vulndb module (with that module's own indexdb command) and
# kept per version. A newer snapshot: a newer version of the module here.
vulndb=v0.0.0-20261105234957-e22db6528018
db=${XDG_CACHE_HOME:-$HOME/.cache}/crier/vulndb-$vulndb
if [ ! -f "$db/index/modules.json" ]; then
  osv=$(go mod download -json "golang.org/x/vulndb@$vulndb" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')/data/osv
  rm -rf "$db.tmp"
  go run "golang.org/x/vulndb/cmd/indexdb@$vulndb" -vulns "$osv" -out "$db.tmp"
  mv "$db.tmp" "$db"
fi
go run golang.org/x/vuln/cmd/govulncheck@v1.9.0 -db "file://$db" ./...

# A few seconds of fuzzing each for hostile input (the long runs are in the README). The
# budget is a count, not a duration: with a duration, Go's fuzzing coordinator (before
# Go 1.27, golang/go#75804) can fail a target with "context deadline exceeded" when the
# time runs out while a worker is busy.
for target in FuzzPublish FuzzLastEventID FuzzStreamTopics; do
  go test -run '^$' -fuzz "^${target}\$" -fuzztime 20000x ./handlers/
done
go test -run '^$' -fuzz '^FuzzRoomEvent$' -fuzztime 20000x ./broker/
