package handlers_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/crierhq/crier/handlers"
	"github.com/crierhq/crier/internal/ssetest"
)

func TestTwentyStreamsOnOneHTTP2Connection(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"h2", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			s := setup{proto: proto}.start(t, presenceHistory, handlers.Options{})

			const n = 20
			streams := make([]*stream, n)
			var last ssetest.Event
			for i := range streams {
				streams[i] = s.open(t, "", nil)
				if got := streams[i].resp.ProtoMajor; got != 2 {
					t.Fatalf("stream %d: HTTP/%d, want HTTP/2", i, got)
				}
				last = streams[i].expect(t, "new_user")
			}
			var presence struct{ Subscribers int }
			if err := json.Unmarshal([]byte(last.Data), &presence); err != nil || presence.Subscribers != n {
				t.Fatalf("last new_user %s: subscribers %d (%v), want %d", last.Data, presence.Subscribers, err, n)
			}
			s.waitMetric(t, "crier_subscribers", n)

			if code, body, _ := s.post(t, "application/json", "", `{"event":"hello","data":"all"}`, nil); code != 200 {
				t.Fatalf("publish: %d %v", code, body)
			}
			for i, st := range streams {
				for range streams[i+1:] { // the later streams' arrivals came first
					st.expect(t, "new_user")
				}
				if ev := st.expect(t, "hello"); ev.Data != `"all"` {
					t.Fatalf("stream %d got %q", i, ev.Data)
				}
			}
			for _, st := range streams[:n/2] {
				st.close()
			}
			s.waitMetric(t, "crier_subscribers", n/2)
			if got := s.accepted(); got != 1 {
				t.Fatalf("the server accepted %d connections, want 1", got)
			}
		})
	}
}

// A stream lives much longer than the server's WriteTimeout and the per-write timeout,
// idle between heartbeats longer than either, on every protocol and on both paths of
// HTTP/1.1. The timeouts are short but not too short: over TLS the server's WriteTimeout
// bounds the handshake too, which a loaded machine running the race detector once took
// longer than 100 ms for.
func TestStreamOutlivesWriteTimeouts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		su   setup
	}{
		{"h1 hub", setup{proto: "h1"}},
		{"h1 handler", setup{proto: "h1", noHub: true}},
		{"h2", setup{proto: "h2"}},
		{"h2c", setup{proto: "h2c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.su.writeTimeout = time.Second
			s := tc.su.start(t, presenceHistory, handlers.Options{WriteTimeout: time.Second, Heartbeat: 3 * time.Second})
			st := s.open(t, "", nil)
			st.expect(t, "new_user")
			time.Sleep(4 * time.Second) // the stream's idle life is the behaviour under test
			if code, body, _ := s.post(t, "application/json", "", `{"event":"late","data":1}`, nil); code != 200 {
				t.Fatalf("publish: %d %v", code, body)
			}
			st.expect(t, "late")
		})
	}
}
