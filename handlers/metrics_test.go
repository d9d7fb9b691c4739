package handlers_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
	"github.com/crierhq/crier/internal/testenv"
)

// presenceHistory is the broker of the tests that watch streams open and resume.
var presenceHistory = broker.Options{History: 100, Presence: true}

// TestMetrics counts streams and publishes on either path a stream can take.
func TestMetrics(t *testing.T) {
	t.Parallel()
	for _, su := range []setup{{}, {noHub: true}} {
		t.Run(pathName(su), func(t *testing.T) {
			t.Parallel()
			testMetrics(t, su.start(t, presenceHistory, handlers.Options{}))
		})
	}
}

// pathName names the path HTTP/1.1 streams take under su.
func pathName(su setup) string {
	if su.noHub {
		return "handler"
	}
	return "hub"
}

func testMetrics(t *testing.T, s *server) {
	st := s.open(t, "?topic=orders", nil)
	st.expect(t, "new_user")

	for _, p := range []struct {
		header http.Header
		body   string
		want   int
	}{
		{nil, `{"data":1}`, 200},
		{http.Header{"Idempotency-Key": {"k1"}}, `{"topic":"orders","event":"shipped","data":2}`, 200},
		{http.Header{"Idempotency-Key": {"k1"}}, `{"topic":"orders","event":"shipped","data":2}`, 200},
		{http.Header{"Authorization": {""}}, `{"data":3}`, 401},
		{bearerH("wrong"), `{"data":3}`, 403},
		{nil, `{"data":`, 400},
	} {
		if got, body, _ := s.post(t, "application/json", "", p.body, p.header); got != p.want {
			t.Fatalf("publish %s: got %d %v, want %d", p.body, got, body, p.want)
		}
	}
	first := st.expect(t, "message")
	st.expect(t, "shipped")

	// A second stream resumes after the broadcast and gets the topic event replayed.
	r := s.open(t, "?topic=orders", http.Header{"Last-Event-Id": {first.ID}})
	if ev := r.expect(t, "shipped"); ev.Data != "2" {
		t.Fatalf("replayed data %q, want 2", ev.Data)
	}
	r.expect(t, "new_user")
	s.waitMetric(t, "crier_subscribers", 2)
	// The second stream hears the first one leave before it leaves too: closed while
	// that news is being written, it could end as a failed write instead.
	st.close()
	r.expect(t, "user_left")
	r.close()
	s.waitMetric(t, `crier_streams_closed_total{reason="client"}`, 2)

	got := s.metrics(t)
	for name, want := range map[string]float64{
		"crier_subscribers":                                 0,
		"crier_subscribers_attached_total":                  2,
		"crier_subscribers_detached_total":                  2,
		`crier_events_published_total{kind="broadcast"}`:    1,
		`crier_events_published_total{kind="topic"}`:        1,
		"crier_publish_duplicates_total":                    1,
		"crier_replayed_events_total":                       1,
		"crier_slow_subscribers_total":                      0,
		`crier_publishes_refused_total{reason="overload"}`:  0,
		"crier_publish_wait_seconds_count":                  0,
		`crier_publish_requests_total{code="200"}`:          3,
		`crier_publish_requests_total{code="400"}`:          1,
		`crier_publish_requests_total{code="401"}`:          1,
		`crier_publish_requests_total{code="403"}`:          1,
		`crier_publish_requests_total{code="503"}`:          0,
		`crier_streams_closed_total{reason="slow"}`:         0,
		`crier_streams_closed_total{reason="write_failed"}`: 0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present: %v), want %v", name, v, ok, want)
		}
	}
	// Live deliveries: to the first stream its new_user, the broadcast, the topic event
	// and the second stream's new_user; to the second its own new_user (then the first's user_left).
	if v := got["crier_deliveries_total"]; v < 5 {
		t.Errorf("crier_deliveries_total = %v, want at least 5", v)
	}
	if v := got["crier_presence_events_total"]; v < 2 {
		t.Errorf("crier_presence_events_total = %v, want at least 2", v)
	}
	for name := range got {
		if strings.Contains(name, "orders") {
			t.Errorf("%s: a topic name became a label", name)
		}
	}
}

func TestMetricsOffWithoutRegisterer(t *testing.T) {
	t.Parallel()
	s := setup{noMetrics: true}.start(t, presenceHistory, handlers.Options{})
	resp, err := s.Client().Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /metrics without a Metrics handler: %s, want 404", resp.Status)
	}
	// Streams and publishes still work with nothing to count them into.
	if code, body, _ := s.post(t, "application/json", "", `{"data":1}`, nil); code != 200 {
		t.Fatalf("publish: %d %v", code, body)
	}
}

func TestBusUp(t *testing.T) {
	t.Parallel()
	var err error
	reg := prometheus.NewRegistry()
	reg.MustRegister(handlers.BusUp(func() error { return err }))
	value := func() float64 {
		mfs, gerr := reg.Gather()
		if gerr != nil || len(mfs) != 1 || mfs[0].GetName() != "crier_bus_up" {
			t.Fatalf("gather: %v %v", mfs, gerr)
		}
		return mfs[0].GetMetric()[0].GetGauge().GetValue()
	}
	if got := value(); got != 1 {
		t.Fatalf("crier_bus_up with a ready bus = %v, want 1", got)
	}
	err = errOpsBus
	if got := value(); got != 0 {
		t.Fatalf("crier_bus_up with an unreachable bus = %v, want 0", got)
	}
}

type opsError string

func (e opsError) Error() string { return string(e) }

const errOpsBus = opsError("redis unreachable")

// TestLogs checks the stream and request lines on either path a stream can take.
func TestLogs(t *testing.T) {
	t.Parallel()
	for _, su := range []setup{{}, {noHub: true}} {
		t.Run(pathName(su), func(t *testing.T) {
			t.Parallel()
			testLogs(t, su.start(t, presenceHistory, handlers.Options{}))
		})
	}
}

func testLogs(t *testing.T, s *server) {
	logs := s.logs
	st := s.open(t, "?topic=a&topic=b", http.Header{"X-Request-Id": {"req-stream"}})
	st.expect(t, "new_user")
	if code, _, _ := s.post(t, "application/json", "", `{"topic":"a","data":1}`, http.Header{"X-Request-Id": {"req-pub"}}); code != 200 {
		t.Fatalf("publish: %d", code)
	}
	st.expect(t, "message")
	st.close()

	var lines []map[string]any
	testenv.Eventually(t, 5*time.Second, func() error {
		lines = lines[:0]
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line %q is not JSON: %v", l, err)
			}
			lines = append(lines, m)
		}
		if opsFind(lines, "stream closed") == nil {
			return errors.New("no stream closed line logged")
		}
		return nil
	})

	opened, closed := opsFind(lines, "stream opened"), opsFind(lines, "stream closed")
	if opened == nil || closed == nil {
		t.Fatalf("no stream opened/closed lines in:\n%s", logs)
	}
	for _, m := range []map[string]any{opened, closed} {
		if m["request_id"] != "req-stream" || m["topics"] != "a,b" || m["subscriber"] == "" || m["remote"] == "" {
			t.Errorf("stream line lacks its request id, topics, subscriber or remote: %v", m)
		}
	}
	if closed["reason"] != "client went away" || closed["events"] != 2.0 || closed["duration"] == nil {
		t.Errorf("stream closed line: %v; want reason, events 2 and duration", closed)
	}
	if m := opsFind(lines, "published"); m == nil || m["level"] != "DEBUG" || m["request_id"] != "req-pub" {
		t.Errorf("published line: %v; want a debug line with the request id", m)
	}
	req := opsFind(lines, "request")
	if req == nil || req["request_id"] != "req-pub" || req["status"] != 200.0 || req["path"] != "/publish" {
		t.Errorf("request line: %v; want the publish with its request id and status", req)
	}
	for _, m := range lines {
		if m["msg"] == "request" && m["path"] == "/events" {
			t.Errorf("a stream got a request line besides its opened/closed lines: %v", m)
		}
	}
}

func opsFind(lines []map[string]any, msg string) map[string]any {
	for _, m := range lines {
		if m["msg"] == msg {
			return m
		}
	}
	return nil
}
