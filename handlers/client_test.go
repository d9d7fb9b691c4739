package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/r3labs/sse/v2"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
	"github.com/crierhq/crier/internal/testenv"
)

// TestIndependentClientResumes uses a widely used Go SSE client library, which reconnects
// with Last-Event-ID by itself, and checks that it receives what was published while it
// was away, once each and in order.
func TestIndependentClientResumes(t *testing.T) {
	// The gate holds every reconnection until the test lets it through, so events are
	// certainly published while the client is away.
	reconnecting := make(chan string, 10)
	release := make(chan struct{})
	var attempts atomic.Int32
	gate := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/events" {
				if attempts.Add(1) > 1 {
					reconnecting <- r.Header.Get("Last-Event-ID")
					<-release
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	s := setup{wrap: gate}.start(t, broker.Options{History: 100}, handlers.Options{Retry: 100 * time.Millisecond})
	client := sse.NewClient(s.URL + "/events")

	var mu sync.Mutex
	var got []string
	arrived := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go client.SubscribeRawWithContext(ctx, func(msg *sse.Event) {
		if len(msg.Data) == 0 {
			return
		}
		mu.Lock()
		got = append(got, string(msg.Data))
		mu.Unlock()
		arrived <- struct{}{}
	})
	wait := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-arrived:
			case <-time.After(10 * time.Second):
				t.Fatalf("timed out; got %v", got)
			}
		}
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := s.broker.Subscribers(); n != 1 {
			return fmt.Errorf("the client did not connect: %d subscribers", n)
		}
		return nil
	})

	_, one, _ := s.post(t, "text/plain", "", "one", nil)
	wait(1)
	// Cut every client connection, and publish while the client is away.
	s.cut()
	s.Client().CloseIdleConnections() // the test's own publishing connection went too
	var resumedFrom string
	select {
	case resumedFrom = <-reconnecting:
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not reconnect")
	}
	if resumedFrom != one["id"] {
		t.Errorf("reconnected with Last-Event-ID %q, want %q", resumedFrom, one["id"])
	}
	for _, d := range []string{"two", "three"} {
		if status, _, _ := s.post(t, "text/plain", "", d, nil); status != http.StatusOK {
			t.Fatalf("publish %s: %d", d, status)
		}
	}
	close(release)
	wait(2)
	s.post(t, "text/plain", "", "four", nil)
	wait(1)

	mu.Lock()
	defer mu.Unlock()
	if want := []string{"one", "two", "three", "four"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Errorf("the client received %q, want %q", got, want)
	}
}
