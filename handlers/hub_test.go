package handlers_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
	"github.com/crierhq/crier/handlers/hub"
	"github.com/crierhq/crier/internal/ssetest"
	"github.com/crierhq/crier/internal/testenv"
)

// hubServer serves crier's handler with a hub of two writers; listener, when set, wraps
// the listener.
func hubServer(t *testing.T, bo broker.Options, listener func(net.Listener) net.Listener) *server {
	t.Helper()
	return setup{hub: hub.Options{Writers: 2}, listener: listener}.start(t, bo, handlers.Options{})
}

// rawStream sends GET /events on its own TCP connection and parses the response with
// net/http's client-side reader, as any HTTP/1.1 client would.
func rawStream(t *testing.T, srv *server, query string) (net.Conn, *http.Response, *ssetest.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(conn, "GET /events"+query+" HTTP/1.1\r\nHost: crier\r\nOrigin: http://example.com\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, resp, ssetest.NewReader(resp.Body)
}

// TestHubStreamFraming: a hijacked stream is a well-formed chunked HTTP/1.1 response
// with the contract's headers, and ends with the last chunk when the server shuts down.
func TestHubStreamFraming(t *testing.T) {
	srv := hubServer(t, broker.Options{}, nil)
	b, hb := srv.broker, srv.hub
	_, resp, events := rawStream(t, srv, "?topic=a")
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
		"Access-Control-Allow-Origin": "*",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if resp.StatusCode != 200 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" || !resp.Close {
		t.Fatalf("status %d, transfer encoding %v, close %v: want 200, chunked, close", resp.StatusCode, resp.TransferEncoding, resp.Close)
	}
	for _, data := range []string{"one", "two\nlines", strings.Repeat("z", 70000)} {
		if _, err := b.Publish(context.Background(), broker.Message{Topic: "a", Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
		ev, err := events.Next()
		if err != nil || ev.Data != data {
			t.Fatalf("got %q (%v), want %.20q", ev.Data, err, data)
		}
	}
	b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hb.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if rest, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("the stream did not end cleanly: %v (after %q)", err, rest)
	}
}

// TestHubHangupAnnounced: a client that closes its connection is noticed at once (no
// write needed) and the others hear user_left.
func TestHubHangupAnnounced(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(net.Listener) net.Listener
	}{{"epoll", nil}, {"reader", opaque}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := hubServer(t, broker.Options{Presence: true}, tc.wrap)
			_, _, stay := rawStream(t, srv, "")
			if ev, _ := stay.Next(); ev.Type != "new_user" {
				t.Fatalf("got %q, want new_user", ev.Type)
			}
			leaver, _, leave := rawStream(t, srv, "")
			leave.Next()
			if ev, _ := stay.Next(); ev.Type != "new_user" {
				t.Fatalf("got %q, want the second new_user", ev.Type)
			}
			start := time.Now()
			leaver.Close()
			ev, err := stay.Next()
			if err != nil || ev.Type != "user_left" {
				t.Fatalf("got %q (%v), want user_left", ev.Type, err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("user_left took %s", took)
			}
		})
	}
}

// opaque hides the connections' descriptors, as a wrapping listener does: the hub then
// writes through net.Conn and reads each connection to notice hang-ups.
func opaque(l net.Listener) net.Listener { return opaqueListener{l} }

type opaqueListener struct{ net.Listener }
type opaqueConn struct{ net.Conn }

func (l opaqueListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return opaqueConn{c}, nil
}

// TestHubStopsEverything: Shutdown ends every stream cleanly and the hub's goroutines
// (writers, watcher, readers) are all gone afterwards.
func TestHubStopsEverything(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(net.Listener) net.Listener
	}{{"epoll", nil}, {"reader", opaque}} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			srv := hubServer(t, broker.Options{}, tc.wrap)
			b, hb := srv.broker, srv.hub
			var bodies []io.Reader
			for range 20 {
				_, resp, _ := rawStream(t, srv, "")
				bodies = append(bodies, resp.Body)
			}
			testenv.Eventually(t, 5*time.Second, func() error {
				if n := b.Subscribers(); n < 20 {
					return fmt.Errorf("%d of 20 streams subscribed", n)
				}
				return nil
			})
			b.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := hb.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			for i, body := range bodies {
				if _, err := io.ReadAll(body); err != nil {
					t.Fatalf("stream %d did not end cleanly: %v", i, err)
				}
			}
			hb.Close() // idempotent
			srv.Close()
			srv.Client().CloseIdleConnections()
			testenv.Eventually(t, 5*time.Second, func() error {
				if n := runtime.NumGoroutine(); n > before {
					buf := make([]byte, 1<<16)
					return fmt.Errorf("%d goroutines, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
				}
				return nil
			})
		})
	}
}
