package handlers_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crierhq/crier/handlers"
)

// failing is a listener out of file descriptors: every accept fails as accept(2) does.
type failing struct{ net.Listener }

func (failing) Accept() (net.Conn, error) {
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
}

// TestWatchAccepts checks that failed accepts are each counted but logged at warn at
// most once per ten seconds, the next line saying how many were not logged.
func TestWatchAccepts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		reg := prometheus.NewRegistry()
		ln, err := handlers.WatchAccepts(failing{}, slog.New(slog.NewTextHandler(&logs, nil)), reg)
		if err != nil {
			t.Fatal(err)
		}
		for range 1000 {
			if _, err := ln.Accept(); !errors.Is(err, syscall.EMFILE) {
				t.Fatalf("Accept: %v, want EMFILE through", err)
			}
		}
		time.Sleep(10 * time.Second)
		if _, err := ln.Accept(); err == nil {
			t.Fatal("Accept succeeded")
		}
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], "level=WARN") ||
			!strings.Contains(lines[0], "too many open files") || !strings.Contains(lines[1], "not_logged=999") {
			t.Errorf("logged for 1001 failed accepts over 10s:\n%s\nwant two warnings, the second with not_logged=999", logs.String())
		}
		mfs, _ := reg.Gather()
		if len(mfs) != 1 || mfs[0].GetMetric()[0].GetCounter().GetValue() != 1001 {
			t.Errorf("crier_accept_errors_total: %v, want 1001", mfs)
		}
	})
}
