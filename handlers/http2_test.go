package handlers_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crierhq/crier/handlers"
)

// protoServer starts h on a test server speaking proto ("h1", "h2" over TLS or "h2c"),
// with the server's WriteTimeout set, and returns it with a client for that protocol and
// a count of the connections the server accepted.
func protoServer(t *testing.T, proto string, h http.Handler, writeTimeout time.Duration) (*httptest.Server, *http.Client, *atomic.Int32) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.WriteTimeout = writeTimeout
	conns := &atomic.Int32{}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	var client *http.Client
	switch proto {
	case "h1":
		srv.Start()
		client = srv.Client()
	case "h2":
		srv.EnableHTTP2 = true
		srv.StartTLS()
		client = srv.Client()
	case "h2c":
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv.Config.Protocols = &p
		srv.Start()
		var cp http.Protocols
		cp.SetUnencryptedHTTP2(true)
		client = &http.Client{Transport: &http.Transport{Protocols: &cp}}
		t.Cleanup(client.CloseIdleConnections)
	}
	t.Cleanup(srv.Close)
	return srv, client, conns
}

func TestTwentyStreamsOnOneHTTP2Connection(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"h2", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			h, _ := opsHandler(t, nil)
			srv, c, conns := protoServer(t, proto, h, 0)

			const n = 20
			streams := make([]*opsStream, n)
			var last opsEvent
			for i := range streams {
				streams[i] = opsOpen(t, c, srv.URL+"/events", nil)
				if got := streams[i].Resp.ProtoMajor; got != 2 {
					t.Fatalf("stream %d: HTTP/%d, want HTTP/2", i, got)
				}
				last = streams[i].next(t, "new_user", 5*time.Second)
			}
			var presence struct{ Subscribers int }
			if err := json.Unmarshal([]byte(last.Data), &presence); err != nil || presence.Subscribers != n {
				t.Fatalf("last new_user %s: subscribers %d (%v), want %d", last.Data, presence.Subscribers, err, n)
			}
			opsWaitMetric(t, c, srv.URL, "crier_subscribers", n)

			if code, body := opsPublish(t, c, srv.URL, opsToken, `{"event":"hello","data":"all"}`, nil); code != 200 {
				t.Fatalf("publish: %d %s", code, body)
			}
			for i, s := range streams {
				if ev := s.next(t, "hello", 2*time.Second); ev.Data != `"all"` {
					t.Fatalf("stream %d got %q", i, ev.Data)
				}
			}
			for _, s := range streams[:n/2] {
				s.Close()
			}
			opsWaitMetric(t, c, srv.URL, "crier_subscribers", n/2)
			if got := conns.Load(); got != 1 {
				t.Fatalf("the server accepted %d connections, want 1", got)
			}
		})
	}
}

// A stream lives much longer than the server's WriteTimeout and the per-write timeout,
// idle between heartbeats longer than either, on every protocol. The timeouts are short
// but not too short: over TLS the server's WriteTimeout bounds the handshake too, which
// a loaded machine running the race detector once took longer than 100 ms for.
func TestStreamOutlivesWriteTimeouts(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"h1", "h2", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			h, _ := opsHandler(t, func(o *handlers.Options) {
				o.WriteTimeout = time.Second
				o.Heartbeat = 3 * time.Second
			})
			srv, c, _ := protoServer(t, proto, h, time.Second)
			s := opsOpen(t, c, srv.URL+"/events", nil)
			s.next(t, "new_user", 5*time.Second)
			time.Sleep(4 * time.Second)
			if code, body := opsPublish(t, c, srv.URL, opsToken, `{"event":"late","data":1}`, nil); code != 200 {
				t.Fatalf("publish: %d %s", code, body)
			}
			s.next(t, "late", 2*time.Second)
		})
	}
}
