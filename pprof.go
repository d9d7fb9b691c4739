//go:build pprof

package main

import (
	"net/http"
	"net/http/pprof"
	"os"
)

// pprofServer is the server of Go's profiles in a build with -tags pprof (how
// BENCHMARKS.md's profiles were taken): on $CRIER_PPROF_ADDR (default 127.0.0.1:6060),
// apart from crier's own listener, started and stopped with the rest.
func pprofServer() *http.Server {
	addr := os.Getenv("CRIER_PPROF_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6060"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &http.Server{Addr: addr, Handler: mux}
}
