//go:build !pprof

package main

import "net/http"

// pprofServer is nil: profiles are served only by a build with -tags pprof.
func pprofServer() *http.Server { return nil }
