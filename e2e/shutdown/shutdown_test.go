// Package shutdown_test checks the contract's "no herds" promise on a real process: when
// crier ends its streams on SIGTERM, their clients are told to come back at moments spread
// over -reconnect-spread, and the process still exits 0 within -shutdown-timeout.
package shutdown_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/crierhq/crier/e2e/internal/sseconn"
	"github.com/crierhq/crier/internal/testenv"
)

// TestShutdownSpreadsReconnects opens 1,000 streams and stops crier: each stream ends
// cleanly, and its end plus the last retry: it was sent is when its EventSource would
// come back. No 100 ms window may hold more than 5% of those moments.
func TestShutdownSpreadsReconnects(t *testing.T) {
	const (
		streams = 1000
		window  = 100 * time.Millisecond
		most    = streams * 5 / 100
	)
	p := testenv.Start(t, []string{"-presence=false", "-retry", "1s", "-reconnect-spread", "5s",
		"-shutdown-timeout", "10s", "-log-level", "warn"})
	type end struct {
		at    time.Time
		retry time.Duration
		err   error
	}
	ends := make(chan end, streams)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var opened []*sseconn.Stream
	for i := range streams {
		s, err := sseconn.Open(ctx, p.Addr, "/events", nil)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if err := s.Expect200(); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		opened = append(opened, s)
		t.Cleanup(func() { s.Close() })
	}
	for _, s := range opened {
		go func() {
			for {
				if _, err := s.Next(); err != nil {
					ends <- end{time.Now(), s.Retry, err}
					return
				}
			}
		}()
	}

	start := time.Now()
	p.Signal(syscall.SIGTERM)
	moments := make([]time.Time, 0, streams)
	for range streams {
		e := <-ends
		if !errors.Is(e.err, io.EOF) {
			t.Fatalf("a stream did not end cleanly: %v", e.err)
		}
		if e.retry < time.Second || e.retry > 6*time.Second {
			t.Fatalf("a stream's last retry: is %s, want one within -retry 1s plus -reconnect-spread 5s", e.retry)
		}
		moments = append(moments, e.at.Add(e.retry))
	}
	code, err := p.Wait(10*time.Second - time.Since(start))
	if err != nil || code != 0 {
		t.Fatalf("exit %d (%v) after SIGTERM, want 0 within -shutdown-timeout", code, err)
	}
	slices.SortFunc(moments, func(a, b time.Time) int { return a.Compare(b) })
	busiest, at := 0, time.Duration(0)
	for i, j := 0, 0; j < len(moments); j++ {
		for moments[j].Sub(moments[i]) >= window {
			i++
		}
		if n := j - i + 1; n > busiest {
			busiest, at = n, moments[i].Sub(start)
		}
	}
	t.Logf("the busiest %s of reconnects holds %d of %d clients, %s after SIGTERM; they span %s",
		window, busiest, streams, at.Round(time.Millisecond), moments[len(moments)-1].Sub(moments[0]).Round(time.Millisecond))
	if busiest > most {
		t.Errorf("%d of %d clients would reconnect within one %s window; want at most %d (5%%)", busiest, streams, window, most)
	}
}
