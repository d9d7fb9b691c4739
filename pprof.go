//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
)

// Built with -tags pprof, crier serves Go's profiles on $CRIER_PPROF_ADDR (default
// 127.0.0.1:6060), apart from its own listener: how BENCHMARKS.md's profiles were taken.
func init() {
	addr := os.Getenv("CRIER_PPROF_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6060"
	}
	go func() { _ = http.ListenAndServe(addr, nil) }()
}
