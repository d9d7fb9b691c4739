package handlers_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
	"github.com/crierhq/crier/handlers/sse"
	"github.com/crierhq/crier/internal/ssetest"
	"github.com/crierhq/crier/internal/testenv"
)

const opsToken = "ops-secret"

// opsHandler builds crier's handler over a fresh broker and registry, with the options
// changed by edit, and logs at debug into the returned buffer.
func opsHandler(t *testing.T, edit func(*handlers.Options)) (http.Handler, *testenv.Log) {
	t.Helper()
	b := broker.New(broker.Options{History: 100, Presence: true, Encode: sse.Encode})
	t.Cleanup(b.Close)
	reg := prometheus.NewRegistry()
	logs := &testenv.Log{}
	o := handlers.Options{
		Broker:       b,
		Logger:       slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Templates:    fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>crier</title>")}},
		Static:       fstest.MapFS{"app.js": {Data: []byte("//")}},
		Heartbeat:    time.Hour,
		PublishToken: opsToken,
		Registerer:   reg,
		Stats:        b.Stats,
		Metrics:      promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	}
	if edit != nil {
		edit(&o)
	}
	h, err := handlers.New(o)
	if err != nil {
		t.Fatalf("handlers.New: %v", err)
	}
	return h, logs
}

// opsEvent is one event read off a stream.
type opsEvent struct {
	ID, Name, Data string
}

// opsStream reads events from an open GET /events response.
type opsStream struct {
	Resp   *http.Response
	events chan opsEvent
	done   chan struct{}
}

// opsOpen opens GET base+path with client and checks for a 200 event stream. The
// stream is closed when the test ends.
func opsOpen(t *testing.T, client *http.Client, url string, header http.Header) *opsStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: %s %q %s", url, resp.Status, resp.Header.Get("Content-Type"), body)
	}
	s := &opsStream{Resp: resp, events: make(chan opsEvent, 1024), done: make(chan struct{})}
	go s.read()
	t.Cleanup(func() { s.Close(); cancel() })
	return s
}

func (s *opsStream) read() {
	defer close(s.events)
	p := ssetest.NewReader(s.Resp.Body)
	for {
		ev, err := p.Next()
		if err != nil {
			return
		}
		select {
		case s.events <- opsEvent{ID: ev.ID, Name: ev.Type, Data: ev.Data}:
		case <-s.done:
			return
		}
	}
}

// Close ends the stream from the client's side; it may be called more than once.
func (s *opsStream) Close() {
	select {
	case <-s.done:
	default:
		close(s.done)
		s.Resp.Body.Close()
	}
}

// next returns the next event named name, skipping others, within d.
func (s *opsStream) next(t *testing.T, name string, d time.Duration) opsEvent {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("stream ended while waiting for a %s event", name)
			}
			if ev.Name == name {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event within %s", name, d)
		}
	}
}

// publish posts a JSON body to base/publish and returns the status and body.
func opsPublish(t *testing.T, client *http.Client, base, token, body string, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/publish", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST /publish: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape fetches base/metrics and returns each sample line's value by its name and labels,
// as written in the exposition ("crier_events_published_total{kind=\"topic\"}").
func opsScrape(t *testing.T, client *http.Client, base string) map[string]float64 {
	t.Helper()
	resp, err := client.Get(base + "/metrics")
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

// opsWaitMetric polls /metrics until name has value want, for at most 5 seconds.
func opsWaitMetric(t *testing.T, client *http.Client, base, name string, want float64) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, func() error {
		if got, ok := opsScrape(t, client, base)[name]; !ok || got != want {
			return fmt.Errorf("%s = %v (present: %v), want %v", name, got, ok, want)
		}
		return nil
	})
}

func opsServer(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}
