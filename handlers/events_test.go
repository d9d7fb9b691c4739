package handlers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
	"github.com/crierhq/crier/internal/ssetest"
)

func TestTwoStreamsSeePresence(t *testing.T) {
	s := newServer(t, broker.Options{Presence: true}, handlers.Options{})
	first := s.open(t, "", nil)
	mine := decode(t, first.expect(t, "new_user"))
	if mine.Message != "new user connected" || mine.Subscribers != 1 || mine.Subscriber == "" {
		t.Fatalf("first new_user: %+v", mine)
	}
	if _, err := time.Parse(time.RFC3339, mine.Time); err != nil {
		t.Errorf("time %q: %v", mine.Time, err)
	}

	second := s.open(t, "", nil)
	other := decode(t, first.expect(t, "new_user"))
	if other.Subscribers != 2 || other.Subscriber == mine.Subscriber {
		t.Fatalf("second new_user seen by the first stream: %+v", other)
	}
	if own := decode(t, second.expect(t, "new_user")); own != other {
		t.Errorf("the new stream's own new_user %+v differs from %+v", own, other)
	}

	second.close()
	left := decode(t, first.expect(t, "user_left"))
	if left.Message != "user disconnected" || left.Subscriber != other.Subscriber || left.Subscribers != 1 {
		t.Errorf("user_left: %+v", left)
	}
}

func TestStreamHeadersAndOpening(t *testing.T) {
	s := newServer(t, broker.Options{}, handlers.Options{Retry: 1500 * time.Millisecond})
	st := s.open(t, "", nil)
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := st.resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	// With presence off nothing else is sent, so this proves the opening was flushed at once.
	line, err := st.Line()
	if err != nil || line != "retry: 1500" {
		t.Fatalf("first line %q (%v), want retry: 1500", line, err)
	}
}

func TestStreamEventsCarryIDsAndTypes(t *testing.T) {
	s := newServer(t, broker.Options{Presence: true}, handlers.Options{})
	st := s.open(t, "?topic=orders", nil)
	join := st.expect(t, "new_user")
	status, body, _ := s.post(t, "application/json", "", `{"topic":"orders","event":"order_shipped","data":{"id": 42, "items": [1, 2]}}`, nil)
	if status != http.StatusOK {
		t.Fatalf("publish: %d %v", status, body)
	}
	ev := st.expect(t, "order_shipped")
	if ev.Data != `{"id":42,"items":[1,2]}` {
		t.Errorf("data %q, want compact JSON", ev.Data)
	}
	if ev.ID != body["id"] {
		t.Errorf("wire id %q, receipt id %q", ev.ID, body["id"])
	}
	if a, _ := strconv.ParseUint(join.ID, 10, 64); a == 0 || ev.ID <= join.ID {
		t.Errorf("ids %q then %q: not increasing", join.ID, ev.ID)
	}
}

func TestBadTopicIs400(t *testing.T) {
	s := newServer(t, broker.Options{}, handlers.Options{})
	for _, q := range []string{
		"?topic=",
		"?topic=" + strings.Repeat("a", 257),
		"?topic=a%0Ab",
		"?topic=a%00b",
		"?topic=%C3%28",
		manyTopics(65),
	} {
		_, resp := s.try(t, q, nil)
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(raw), `"error"`) {
			t.Errorf("GET /events%.40s: %d %s, want 400 with a JSON error", q, resp.StatusCode, raw)
		}
	}
	// 256 characters, counted as characters, not bytes, is fine; so are 64 topics.
	s.open(t, "?topic="+strings.Repeat("%C3%A9", 256), nil)
	s.open(t, manyTopics(64), nil)
}

func manyTopics(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("&topic=t" + strconv.Itoa(i))
	}
	return "?" + b.String()[1:]
}

func TestMaxSubscribers(t *testing.T) {
	s := newServer(t, broker.Options{MaxSubscribers: 1}, handlers.Options{Retry: 2 * time.Second})
	s.open(t, "", nil)
	_, resp := s.try(t, "", nil)
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("at the limit: %d Retry-After %q, want 503 and 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" || !strings.Contains(string(raw), `"error"`) {
		t.Errorf("at the limit: %s %s, want a JSON error", ct, raw)
	}
}

func TestResumeOverHTTP(t *testing.T) {
	s := newServer(t, broker.Options{History: 100}, handlers.Options{})
	var ids []string
	for _, d := range []string{"a", "b", "c"} {
		_, body, _ := s.post(t, "text/plain", "", d, nil)
		ids = append(ids, body["id"])
	}
	for name, open := range map[string]func() *stream{
		"header": func() *stream { return s.open(t, "", http.Header{"Last-Event-Id": {ids[0]}}) },
		"query":  func() *stream { return s.open(t, "?lastEventId="+ids[0], nil) },
	} {
		st := open()
		for i, want := range []string{"b", "c"} {
			ev := st.expect(t, "message")
			if ev.Data != want || ev.ID != ids[i+1] {
				t.Errorf("%s: replay %d = %q id %s, want %q id %s", name, i, ev.Data, ev.ID, want, ids[i+1])
			}
		}
	}
}

func TestCORS(t *testing.T) {
	s := newServer(t, broker.Options{}, handlers.Options{CORSOrigins: []string{"https://app.example"}})
	for _, tc := range []struct {
		origin, want string
	}{
		{"https://app.example", "https://app.example"},
		{"https://evil.example", ""},
	} {
		req, _ := http.NewRequest(http.MethodOptions, s.URL+"/publish", nil)
		req.Header.Set("Origin", tc.origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, idempotency-key")
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.want {
			t.Errorf("preflight from %s: Allow-Origin %q, want %q", tc.origin, got, tc.want)
		}
		if tc.want != "" && !strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "authorization") {
			t.Errorf("preflight from %s: Allow-Headers %q lacks Authorization", tc.origin, resp.Header.Get("Access-Control-Allow-Headers"))
		}
		st := s.open(t, "", http.Header{"Origin": {tc.origin}})
		if got := st.resp.Header.Get("Access-Control-Allow-Origin"); got != tc.want {
			t.Errorf("stream from %s: Allow-Origin %q, want %q", tc.origin, got, tc.want)
		}
	}
	any := newServer(t, broker.Options{}, handlers.Options{})
	st := any.open(t, "", http.Header{"Origin": {"https://anywhere.example"}})
	if got := st.resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("default origins: Allow-Origin %q, want *", got)
	}
}

func TestJSONErrorsForUnknownRoutesAndMethods(t *testing.T) {
	s := newServer(t, broker.Options{}, handlers.Options{})
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, "/static/missing.js", http.StatusNotFound},
		{http.MethodGet, "/static/css", http.StatusNotFound},
		{http.MethodGet, "/publish", http.StatusMethodNotAllowed},
		{http.MethodPost, "/events", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/", http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(tc.method, s.URL+tc.path, nil)
		if status, body, _ := do(t, s.Client(), req); status != tc.want || body["error"] == "" {
			t.Errorf("%s %s: %d %v, want %d with an error", tc.method, tc.path, status, body, tc.want)
		}
	}
}

func TestHeadOnDocumentsNotOnStreams(t *testing.T) {
	s := newServer(t, broker.Options{}, handlers.Options{})
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/", http.StatusOK},
		{"/static/app.js", http.StatusOK},
		{"/healthz", http.StatusOK},
		{"/readyz", http.StatusOK},
		{"/events", http.StatusMethodNotAllowed},
		{"/publish", http.StatusMethodNotAllowed},
	} {
		resp, err := s.Client().Head(s.URL + tc.path)
		if err != nil {
			t.Fatalf("HEAD %s: %v", tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("HEAD %s: %d, want %d", tc.path, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusOK && resp.Header.Get("Content-Type") == "" {
			t.Errorf("HEAD %s: no Content-Type", tc.path)
		}
	}
}

func TestPageHealthAndReadiness(t *testing.T) {
	s := newServer(t, broker.Options{}, handlers.Options{})
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/", "text/html", "<title>crier</title>"},
		{"/static/app.js", "text/javascript", "EventSource"},
		{"/healthz", "application/json", "ok"},
		{"/readyz", "application/json", "ready"},
	} {
		resp, err := s.Client().Get(s.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.contentType) ||
			!strings.Contains(string(raw), tc.contains) {
			t.Errorf("GET %s: %d %s %q", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
		}
	}
	s.broker.Close()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/readyz", nil)
	if status, _, _ := do(t, s.Client(), req); status != http.StatusServiceUnavailable {
		t.Errorf("readyz after close: %d, want 503", status)
	}
	req, _ = http.NewRequest(http.MethodGet, s.URL+"/healthz", nil)
	if status, _, _ := do(t, s.Client(), req); status != http.StatusOK {
		t.Errorf("healthz after close: %d, want 200", status)
	}
}

func TestShutdownEndsStreams(t *testing.T) {
	s := newServer(t, broker.Options{}, handlers.Options{})
	st := s.open(t, "", nil)
	st.Line() // the opening
	s.Config.Shutdown(t.Context())
	if _, err := io.ReadAll(st.resp.Body); err != nil {
		t.Errorf("the stream did not end cleanly: %v", err)
	}
}

func TestPageRefusesTemplateActions(t *testing.T) {
	b := broker.New(broker.Options{})
	defer b.Close()
	templates := fstest.MapFS{"index.html": {Data: []byte(`<title>{{.Title}}</title>`)}}
	if _, err := handlers.New(handlers.Options{Broker: b, Templates: templates, Static: testStatic, PublishToken: token}); err == nil {
		t.Fatal("a page with a template action was accepted, and would be served verbatim")
	}
}

// presenceData is the payload of new_user and user_left.
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
