package handlers_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
	"github.com/crierhq/crier/handlers/hub"
	"github.com/crierhq/crier/handlers/sse"
	"github.com/crierhq/crier/internal/ssetest"
	"github.com/crierhq/crier/internal/testenv"
)

// The handlers' tests run crier's real handler over a real broker: in memory (on a fake
// clock) through setup.handler, or on a real TCP port through newServer and setup.start.

const token = "test-token"

// testTemplates and testStatic stand in for the embedded templates and static files.
var (
	testTemplates = fstest.MapFS{"index.html": {Data: []byte(`<!doctype html><title>crier</title><script src="/static/app.js"></script>`)}}
	testStatic    = fstest.MapFS{"app.js": {Data: []byte(`new EventSource("/events")`)}, "css/site.css": {Data: []byte(`body{}`)}}
)

// setup says how a test's crier differs from the binary's. Its zero value is the
// binary's: HTTP/1.1 in cleartext, streams handed to a hub, metrics on.
type setup struct {
	proto        string        // "h1" (default), "h2" (over TLS) or "h2c"
	writeTimeout time.Duration // the http.Server's WriteTimeout; zero: none
	noHub        bool          // no hub: every stream on the handler's own path
	hub          hub.Options   // the hub's options; zero: its defaults
	noMetrics    bool          // no Registerer, Stats or /metrics
	// wrap wraps the handler, listener the listener; nil leaves each as it is.
	wrap     func(http.Handler) http.Handler
	listener func(net.Listener) net.Listener
	// broker stands between the handler and the real broker; nil: none.
	broker func(handlers.Broker) handlers.Broker
}

// handler builds crier's handler over a new broker, closed when the test ends. What bo
// and ho leave zero takes these defaults: broker buffer 64; the test templates and
// token; heartbeats every hour (so that a test sees one only when it asks); logs at
// debug into the returned Log; metrics in a registry of the handler's own.
func (su setup) handler(t testing.TB, bo broker.Options, ho handlers.Options) (http.Handler, *broker.Broker, *testenv.Log) {
	t.Helper()
	bo.Encode = sse.Encode
	if bo.Buffer == 0 {
		bo.Buffer = 64
	}
	b := broker.New(bo)
	t.Cleanup(b.Close)
	ho.Broker = b
	if su.broker != nil {
		ho.Broker = su.broker(b)
	}
	if ho.Templates == nil {
		ho.Templates = testTemplates
	}
	if ho.Static == nil {
		ho.Static = testStatic
	}
	if ho.PublishToken == "" {
		ho.PublishToken = token
	}
	if ho.Heartbeat == 0 {
		ho.Heartbeat = time.Hour
	}
	logs := &testenv.Log{}
	if ho.Logger == nil {
		ho.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if !su.noMetrics {
		reg := prometheus.NewRegistry()
		ho.Registerer, ho.Stats, ho.Metrics = reg, b.Stats, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	h, err := handlers.New(ho)
	if err != nil {
		t.Fatalf("handlers.New: %v", err)
	}
	if su.wrap != nil {
		h = su.wrap(h)
	}
	return h, b, logs
}

// server is crier's handler on a real TCP port.
type server struct {
	*httptest.Server
	broker *broker.Broker
	hub    *hub.Hub // nil with setup.noHub
	logs   *testenv.Log
	client *http.Client

	mu    sync.Mutex
	conns []net.Conn // every connection accepted, hijacked ones too
}

// newServer runs crier as the binary does, on HTTP/1.1; see setup.handler for the
// defaults of what bo and ho leave zero.
func newServer(t *testing.T, bo broker.Options, ho handlers.Options) *server {
	t.Helper()
	return setup{}.start(t, bo, ho)
}

// start runs crier's handler, built as su says, on a real TCP port until the test ends.
func (su setup) start(t *testing.T, bo broker.Options, ho handlers.Options) *server {
	t.Helper()
	s := &server{}
	if !su.noHub {
		s.hub = hub.New(su.hub)
		t.Cleanup(s.hub.Close)
		ho.Hub = s.hub
	}
	var h http.Handler
	h, s.broker, s.logs = su.handler(t, bo, ho)
	srv := httptest.NewUnstartedServer(h)
	s.Server = srv
	if su.listener != nil {
		srv.Listener = su.listener(srv.Listener)
	}
	srv.Config.WriteTimeout = su.writeTimeout
	srv.Config.RegisterOnShutdown(s.broker.Close)
	srv.Config.ConnState = func(c net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}
	switch su.proto {
	case "", "h1":
		srv.Start()
		s.client = srv.Client()
	case "h2":
		srv.EnableHTTP2 = true
		srv.StartTLS()
		s.client = srv.Client()
	case "h2c":
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv.Config.Protocols = &p
		srv.Start()
		var cp http.Protocols
		cp.SetUnencryptedHTTP2(true)
		s.client = &http.Client{Transport: &http.Transport{Protocols: &cp}}
		t.Cleanup(s.client.CloseIdleConnections)
	default:
		t.Fatalf("unknown protocol %q", su.proto)
	}
	t.Cleanup(func() {
		s.broker.Close()
		srv.Close()
	})
	return s
}

// Client returns a client that speaks the server's protocol.
func (s *server) Client() *http.Client { return s.client }

// accepted returns how many connections the server has accepted.
func (s *server) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// cut closes every client connection, the hub's streams too (CloseClientConnections
// knows nothing of hijacked connections).
func (s *server) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.CloseClientConnections()
}

// stream is an open GET /events.
type stream struct {
	resp *http.Response
	*ssetest.Reader
	cancel context.CancelFunc
}

// open starts a stream and fails the test unless it answers 200 with an event stream.
func (s *server) open(t *testing.T, query string, header http.Header) *stream {
	t.Helper()
	st, resp := s.try(t, query, header)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /events%s: %s %q %s", query, resp.Status, resp.Header.Get("Content-Type"), body)
	}
	return st
}

// streamLife bounds how long a test's stream stays open, so that a read awaiting an
// event that never comes fails the test instead of hanging it. It is far above what any
// test needs, as a loaded machine running the race detector can be many times slower.
const streamLife = time.Minute

// try starts a stream and returns whatever the server answered.
func (s *server) try(t *testing.T, query string, header http.Header) (*stream, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), streamLife)
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

// close ends the stream from the client's side; it may be called more than once.
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

// post publishes with the test token, unless header carries an Authorization of its
// own; an empty one sends none.
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
	if req.Header.Get("Authorization") == "" {
		req.Header.Del("Authorization")
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

// metrics fetches /metrics and returns each sample line's value by its name and labels,
// as written in the exposition ("crier_events_published_total{kind=\"topic\"}").
func (s *server) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := s.Client().Get(s.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// waitMetric polls /metrics until name has value want, for at most 5 seconds.
func (s *server) waitMetric(t *testing.T, name string, want float64) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, func() error {
		if got, ok := s.metrics(t)[name]; !ok || got != want {
			return fmt.Errorf("%s = %v (present: %v), want %v", name, got, ok, want)
		}
		return nil
	})
}
