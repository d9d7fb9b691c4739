package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
)

// lockedRecorder is a ResponseRecorder whose body can be read while the handler writes.
type lockedRecorder struct {
	mu sync.Mutex
	*httptest.ResponseRecorder
}

func (r *lockedRecorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ResponseRecorder.Write(b)
}

func (r *lockedRecorder) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ResponseRecorder.Flush()
}

func (r *lockedRecorder) body() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Body.String()
}

// TestHeartbeat runs a stream on a fake clock: an idle stream gets a comment every
// -heartbeat, and a stream that just carried an event gets none.
func TestHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, b, _ := setup{}.handler(t, broker.Options{}, handlers.Options{Heartbeat: 15 * time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		rec := &lockedRecorder{ResponseRecorder: httptest.NewRecorder()}
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/events", nil))
		}()
		beats := func() int { return strings.Count(rec.body(), ": heartbeat\n") }

		synctest.Wait()
		if got := rec.body(); got != "retry: 3000\n\n" {
			t.Fatalf("opening %q", got)
		}
		time.Sleep(15 * time.Second)
		synctest.Wait()
		if beats() != 1 {
			t.Fatalf("after 15s idle: %d heartbeats, want 1", beats())
		}
		time.Sleep(10 * time.Second) // 25s: an event arrives
		b.Publish(context.Background(), broker.Message{Data: []byte("x")})
		time.Sleep(5 * time.Second) // 30s: the stream was not idle
		synctest.Wait()
		if beats() != 1 {
			t.Fatalf("after an event: %d heartbeats, want still 1", beats())
		}
		time.Sleep(15 * time.Second) // 45s: idle again
		synctest.Wait()
		if beats() != 2 {
			t.Fatalf("after 15s idle again: %d heartbeats, want 2", beats())
		}
		cancel()
		<-done
	})
}
