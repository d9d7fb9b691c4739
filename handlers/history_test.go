package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
)

// historyAnswer is GET /history's body, or an error's.
type historyAnswer struct {
	Topic  string `json:"topic"`
	Events []struct {
		ID    string          `json:"id"`
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	} `json:"events"`
	Missed *bool  `json:"missed"`
	Error  string `json:"error"`
}

func (s *server) history(t *testing.T, query string, header http.Header) (int, historyAnswer) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/history"+query, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a historyAnswer
	if err := json.Unmarshal(raw, &a); err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /history%s: %d %q is not JSON (%v)", query, resp.StatusCode, raw, err)
	}
	return resp.StatusCode, a
}

func TestHistoryEndpoint(t *testing.T) {
	s := privateServer(t, broker.Options{History: 1100}, handlers.Options{}, nil)
	publishN := func(topic string, n int) []string {
		var ids []string
		for i := range n {
			r, err := s.broker.Publish(context.Background(), broker.Message{Topic: topic, Data: fmt.Appendf(nil, `{"n":%d}`, i)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, broker.FormatID(r.ID))
		}
		return ids
	}
	news := publishN("news", 3)
	_, text, _ := s.post(t, "text/plain", "?topic=news&event=note", "plain \"text\"\nline", nil)
	mine := publishN("user/42", 2)
	big := publishN("big", 1050)

	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	granted := hs256(t, grants([]string{"user/42"}, nil, time.Hour))
	other := hs256(t, grants([]string{"user/43"}, nil, time.Hour))
	for _, tc := range []struct {
		name       string
		query      string
		header     http.Header
		want       int
		wantIDs    []string // nil: only the count is checked
		wantCount  int
		wantMissed bool
	}{
		{"public topic", "?topic=news", nil, 200, append(news, text["id"]), 4, false},
		{"after an id", "?topic=news&after=" + news[0], nil, 200, append(news[1:], text["id"]), 3, false},
		{"limit", "?topic=news&limit=2", nil, 200, news[:2], 2, false},
		{"default limit", "?topic=big", nil, 200, big[:100], 100, false},
		{"limit over the cap", "?topic=big&limit=5000", nil, 200, big[:1000], 1000, false},
		{"limit far over the cap", "?topic=big&limit=99999999999999999999999", nil, 200, nil, 1000, false},
		{"after an id from before the start", "?topic=news&after=1", nil, 200, nil, 4, true},
		{"unknown topic", "?topic=nobody", nil, 200, []string{}, 0, false},
		{"private, granted", "?topic=user/42", bearer(granted), 200, mine, 2, false},
		{"private, granted by query", "?topic=user/42&access_token=" + url.QueryEscape(granted), nil, 200, mine, 2, false},
		{"private, publish token", "?topic=user/42", bearer(token), 200, mine, 2, false},
		{"private, no token", "?topic=user/42", nil, 401, nil, 0, false},
		{"private, not granted", "?topic=user/42", bearer(other), 403, nil, 0, false},
		{"private, bad token", "?topic=user/42", bearer("x.y.z"), 401, nil, 0, false},
		{"no topic", "", nil, 400, nil, 0, false},
		{"empty topic", "?topic=", nil, 400, nil, 0, false},
		{"two topics", "?topic=a&topic=b", nil, 400, nil, 0, false},
		{"control character", "?topic=a%07", nil, 400, nil, 0, false},
		{"bad after", "?topic=news&after=abc", nil, 400, nil, 0, false},
		{"negative after", "?topic=news&after=-1", nil, 400, nil, 0, false},
		{"empty after", "?topic=news&after=", nil, 400, nil, 0, false},
		{"zero limit", "?topic=news&limit=0", nil, 400, nil, 0, false},
		{"negative limit", "?topic=news&limit=-3", nil, 400, nil, 0, false},
		{"limit not a number", "?topic=news&limit=ten", nil, 400, nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, a := s.history(t, tc.query, tc.header)
			if status != tc.want {
				t.Fatalf("status %d (%s), want %d", status, a.Error, tc.want)
			}
			if status != http.StatusOK {
				if a.Error == "" {
					t.Errorf("%d without an error message", status)
				}
				return
			}
			if a.Events == nil || a.Missed == nil {
				t.Fatalf("events or missed absent: %+v", a)
			}
			var ids []string
			for _, ev := range a.Events {
				ids = append(ids, ev.ID)
			}
			if len(ids) != tc.wantCount || (tc.wantIDs != nil && fmt.Sprint(ids) != fmt.Sprint(tc.wantIDs)) {
				t.Errorf("got %d events %v, want %d %v", len(ids), ids, tc.wantCount, tc.wantIDs)
			}
			if *a.Missed != tc.wantMissed {
				t.Errorf("missed %v, want %v", *a.Missed, tc.wantMissed)
			}
		})
	}

	// Data comes back as published: JSON as JSON, text as a string.
	_, a := s.history(t, "?topic=news&after="+news[1], nil)
	if len(a.Events) != 2 || a.Topic != "news" {
		t.Fatalf("got %+v", a)
	}
	if got := string(a.Events[0].Data); got != `{"n":2}` || a.Events[0].Event != "message" {
		t.Errorf("JSON event: %s %s, want message {\"n\":2}", a.Events[0].Event, got)
	}
	var str string
	if err := json.Unmarshal(a.Events[1].Data, &str); err != nil || str != "plain \"text\"\nline" || a.Events[1].Event != "note" {
		t.Errorf("text event: %s %s, want a JSON string of the body (%v)", a.Events[1].Event, a.Events[1].Data, err)
	}
}

// Idempotency keys belong to their publisher, and a key reused for another event is
// refused with 422.
func TestIdempotencyKeyScope(t *testing.T) {
	s := privateServer(t, broker.Options{History: 100}, handlers.Options{}, nil)
	st := s.open(t, "?topic=admin&topic=user/666", http.Header{"Authorization": {"Bearer " + hs256(t, grants([]string{"*"}, nil, time.Hour))}})
	tenant := hs256(t, grants(nil, []string{"user/666"}, time.Hour))
	publishAs := func(tok, topic, body string) (int, map[string]string) {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/publish?topic="+topic, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Idempotency-Key", "order-1001")
		status, answer, _ := do(t, s.Client(), req)
		return status, answer
	}
	status, first := publishAs(tenant, "user/666", "a")
	if status != http.StatusOK {
		t.Fatalf("first publish: %d %v", status, first)
	}
	// The static token is another publisher: its key is its own, and its event goes out.
	status, admin := publishAs(token, "admin", "b")
	if status != http.StatusOK || admin["id"] == first["id"] {
		t.Fatalf("another publisher's key: %d %v, want 200 with a new id", status, admin)
	}
	for _, want := range []string{first["id"], admin["id"]} {
		if ev := st.expect(t, "message"); ev.ID != want {
			t.Fatalf("got event %s, want %s", ev.ID, want)
		}
	}
	// The same publisher and key: the same event is a retry, another one is refused.
	if status, again := publishAs(tenant, "user/666", "a"); status != http.StatusOK || again["id"] != first["id"] {
		t.Errorf("retry: %d %v, want 200 with id %s", status, again, first["id"])
	}
	if status, conflict := publishAs(tenant, "user/666", "changed"); status != http.StatusUnprocessableEntity || conflict["error"] == "" {
		t.Errorf("same key, other data: %d %v, want 422 with an error", status, conflict)
	}
	_, marker, _ := s.post(t, "text/plain", "?topic=admin", "marker", nil)
	if ev := st.expect(t, "message"); ev.ID != marker["id"] {
		t.Errorf("after the retry and the conflict came %s %q, want only the marker", ev.ID, ev.Data)
	}
}
