package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
	"github.com/crierhq/crier/handlers/hub"
	"github.com/crierhq/crier/handlers/sse"
	"github.com/crierhq/crier/internal/ssetest"
)

const token = "test-token"

// testPage stands in for the embedded templates and static files.
var (
	testTemplates = fstest.MapFS{"index.html": {Data: []byte(`<!doctype html><title>crier</title><script src="/static/app.js"></script>`)}}
	testStatic    = fstest.MapFS{"app.js": {Data: []byte(`new EventSource("/events")`)}, "css/site.css": {Data: []byte(`body{}`)}}
)

type server struct {
	*httptest.Server
	broker *broker.Broker

	mu    sync.Mutex
	conns []net.Conn // every connection accepted, hijacked ones too
}

// cut closes every client connection, the hub's streams too (CloseClientConnections
// knows nothing of hijacked connections).
func (s *server) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.CloseClientConnections()
}

// newServer runs crier's handler on a real TCP port. Zero options take test defaults;
// wrap, if given, wraps the handler.
func newServer(t *testing.T, bo broker.Options, ho handlers.Options, wrap ...func(http.Handler) http.Handler) *server {
	t.Helper()
	bo.Encode = sse.Encode
	if bo.Buffer == 0 {
		bo.Buffer = 64
	}
	b := broker.New(bo)
	ho.Broker = b
	ho.Templates, ho.Static = testTemplates, testStatic
	if ho.PublishToken == "" {
		ho.PublishToken = token
	}
	// HTTP/1.1 streams take the hub's path, as in the binary.
	hub := hub.New(hub.Options{})
	t.Cleanup(hub.Close)
	ho.Hub = hub
	h, err := handlers.New(ho)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wrap {
		h = w(h)
	}
	srv := httptest.NewUnstartedServer(h)
	s := &server{Server: srv, broker: b}
	srv.Config.RegisterOnShutdown(b.Close)
	srv.Config.ConnState = func(c net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(func() {
		b.Close()
		srv.Close()
	})
	return s
}

// stream is an open GET /events.
type stream struct {
	resp *http.Response
	*ssetest.Reader
	cancel context.CancelFunc
}

// open starts a stream and fails the test unless it answers 200.
func (s *server) open(t *testing.T, query string, header http.Header) *stream {
	t.Helper()
	st, resp := s.try(t, query, header)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /events%s: %s %s", query, resp.Status, body)
	}
	return st
}

// try starts a stream and returns whatever the server answered.
func (s *server) try(t *testing.T, query string, header http.Header) (*stream, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/events"+query, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /events%s: %v", query, err)
	}
	st := &stream{resp: resp, Reader: ssetest.NewReader(resp.Body), cancel: cancel}
	t.Cleanup(st.close)
	return st, resp
}

func (st *stream) close() {
	st.cancel()
	st.resp.Body.Close()
}

// expect reads the next event and checks its type.
func (st *stream) expect(t *testing.T, typ string) ssetest.Event {
	t.Helper()
	ev, err := st.Next()
	if err != nil {
		t.Fatalf("waiting for %s: %v", typ, err)
	}
	if ev.Type != typ {
		t.Fatalf("got event %q (%s), want %q", ev.Type, ev.Data, typ)
	}
	return ev
}

// post publishes with the test token.
func (s *server) post(t *testing.T, contentType, query, body string, header http.Header) (int, map[string]string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/publish"+query, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return do(t, s.Client(), req)
}

// do sends req and decodes a JSON object answer; a non-JSON answer fails the test.
func do(t *testing.T, c *http.Client, req *http.Request) (int, map[string]string, http.Header) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]string
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%s %s answered %d with non-JSON %q", req.Method, req.URL.Path, resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type %q, want application/json", req.Method, req.URL.Path, ct)
	}
	return resp.StatusCode, body, resp.Header
}

type presenceData struct {
	Message     string `json:"message"`
	Subscriber  string `json:"subscriber"`
	Subscribers int    `json:"subscribers"`
	Time        string `json:"time"`
}

func decode(t *testing.T, ev ssetest.Event) presenceData {
	t.Helper()
	var p presenceData
	if err := json.Unmarshal([]byte(ev.Data), &p); err != nil {
		t.Fatalf("presence data %q: %v", ev.Data, err)
	}
	return p
}
