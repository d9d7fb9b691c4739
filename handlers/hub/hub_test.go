package hub

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers/sse"
	"github.com/crierhq/crier/internal/ssetest"
)

// hijackable is a ResponseWriter whose connection, the server's end of a pipe, can be
// hijacked, as net/http's can.
type hijackable struct {
	header   http.Header
	conn     net.Conn
	hijacked bool
}

func (w *hijackable) Header() http.Header       { return w.header }
func (w *hijackable) Write([]byte) (int, error) { return 0, errors.New("written, not hijacked") }
func (w *hijackable) WriteHeader(int)           {}
func (w *hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked = true
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}

// client is the far end of an adopted stream.
type client struct {
	conn  net.Conn
	resp  chan *http.Response // the response, once its head arrived
	ended chan error          // why the hub ended the stream (Stream.Done)
}

// adopt subscribes to b and hands the stream to h, with a client at the other end of
// the connection that reads the response head unless read is false.
func adopt(t *testing.T, h *Hub, b *broker.Broker, st Stream, read bool) *client {
	t.Helper()
	sub, err := b.Subscribe(broker.Request{})
	if err != nil {
		t.Fatal(err)
	}
	server, conn := net.Pipe()
	c := &client{conn: conn, resp: make(chan *http.Response, 1), ended: make(chan error, 1)}
	t.Cleanup(func() { conn.Close() })
	req := httptest.NewRequest(http.MethodGet, "/events", nil)
	if read {
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(conn), req)
			if err != nil {
				t.Errorf("reading the response head: %v", err)
				close(c.resp)
				return
			}
			c.resp <- resp
		}()
	}
	st.Sub = sub
	st.Done = func(err error) { sub.Close(); c.ended <- err }
	w := &hijackable{header: http.Header{"Access-Control-Allow-Origin": {"*"}}, conn: server}
	if !h.Adopt(w, req, st) {
		t.Fatal("Adopt declined a plain HTTP/1.1 GET")
	}
	return c
}

// TestAdopt checks the contract on a fake clock: the client gets a chunked 200 with the
// headers set before and sse's, the opening, events and heartbeats; the stream ends for
// each reason with the cause Done hears, and with the farewell and a clean end of the
// response unless the client is gone.
func TestAdopt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		end   func(b *broker.Broker, h *Hub, c *client)
		want  error
		clean bool // the response ends with its last chunk
	}{
		{"subscription ended", func(b *broker.Broker, _ *Hub, _ *client) { b.Close() }, broker.ErrClosed, true},
		{"hub closed", func(_ *broker.Broker, h *Hub, _ *client) { h.Close() }, ErrClosed, true},
		{"expired", func(*broker.Broker, *Hub, *client) { time.Sleep(time.Minute) }, ErrExpired, true},
		{"client hung up", func(_ *broker.Broker, _ *Hub, c *client) { c.conn.Close() }, ErrHungUp, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := broker.New(broker.Options{Encode: sse.Encode})
				defer b.Close()
				h := newHub(Options{Writers: 1})
				defer h.Close()
				farewell := sse.Retry(4321)
				c := adopt(t, h, b, Stream{Opening: sse.Retry(1000), Heartbeat: 10 * time.Second,
					WriteTimeout: time.Minute, Expires: time.Now().Add(30 * time.Second),
					Farewell: func() []byte { return farewell }}, true)
				resp := <-c.resp
				for k, want := range map[string]string{"Content-Type": "text/event-stream",
					"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"} {
					if got := resp.Header.Get(k); got != want {
						t.Errorf("%s: %q, want %q", k, got, want)
					}
				}
				if resp.StatusCode != http.StatusOK || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
					t.Fatalf("status %d, transfer encoding %v: want 200, chunked", resp.StatusCode, resp.TransferEncoding)
				}
				events := ssetest.NewReader(resp.Body)
				if line, err := events.Line(); err != nil || line != "retry: 1000" {
					t.Fatalf("opening %q (%v), want retry: 1000", line, err)
				}
				b.Publish(context.Background(), broker.Message{Data: []byte("one")})
				if ev, err := events.Next(); err != nil || ev.Data != "one" {
					t.Fatalf("got %+v (%v), want the event", ev, err)
				}
				time.Sleep(11 * time.Second)
				b.Publish(context.Background(), broker.Message{Data: []byte("two")})
				if ev, err := events.Next(); err != nil || ev.Data != "two" || events.Comments() != 1 {
					t.Fatalf("got %+v (%v) after %d comments, want the event after one heartbeat", ev, err, events.Comments())
				}
				select {
				case err := <-c.ended:
					t.Fatalf("ended early: %v", err)
				default:
				}

				// The client keeps reading: a pipe, unlike a socket, takes nothing otherwise.
				rest := make(chan error, 1)
				go func() {
					b, err := io.ReadAll(resp.Body)
					if more := bytes.ReplaceAll(b, sse.Heartbeat, nil); err == nil && !bytes.Equal(more, farewell) {
						err = fmt.Errorf("%q more, want the farewell %q", more, farewell)
					}
					rest <- err
				}()
				tc.end(b, h, c)
				if err := <-c.ended; !errors.Is(err, tc.want) {
					t.Errorf("Done heard %v, want %v", err, tc.want)
				}
				if err := <-rest; tc.clean && err != nil {
					t.Errorf("the response did not end cleanly: %v", err)
				}
			})
		})
	}
}

// TestAdoptWriteTimeout: a client that takes nothing, not even the head, ends with
// ErrWriteTimeout once WriteTimeout has passed, and not before.
func TestAdoptWriteTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker.New(broker.Options{Encode: sse.Encode})
		defer b.Close()
		h := newHub(Options{Writers: 1})
		defer h.Close()
		c := adopt(t, h, b, Stream{Opening: sse.Retry(1000), Heartbeat: time.Hour, WriteTimeout: 30 * time.Second}, false)
		time.Sleep(29 * time.Second)
		synctest.Wait()
		select {
		case err := <-c.ended:
			t.Fatalf("ended after 29s: %v", err)
		default:
		}
		time.Sleep(2 * time.Second)
		if err := <-c.ended; err != ErrWriteTimeout {
			t.Fatalf("Done heard %v, want %v", err, ErrWriteTimeout)
		}
	})
}

// TestAdoptDeclines: what the hub cannot write is left to the caller, untouched.
func TestAdoptDeclines(t *testing.T) {
	for _, tc := range []struct {
		name  string
		req   func() *http.Request
		close bool
	}{
		{"HTTP/1.0", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/events", nil)
			r.Proto, r.ProtoMinor = "HTTP/1.0", 0
			return r
		}, false},
		{"HTTP/2", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/events", nil)
			r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
			return r
		}, false},
		{"HEAD", func() *http.Request { return httptest.NewRequest(http.MethodHead, "/events", nil) }, false},
		{"closed hub", func() *http.Request { return httptest.NewRequest(http.MethodGet, "/events", nil) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHub(Options{Writers: 1})
				defer h.Close()
				if tc.close {
					h.Close()
				}
				w := &hijackable{header: http.Header{}}
				done := false
				if h.Adopt(w, tc.req(), Stream{Heartbeat: time.Hour, Done: func(error) { done = true }}) {
					t.Fatal("Adopt took the stream")
				}
				if w.hijacked || done || len(w.header) != 0 {
					t.Errorf("declined, yet hijacked %v, Done called %v, headers %v", w.hijacked, done, w.header)
				}
			})
		})
	}
}
