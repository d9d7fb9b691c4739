package cluster_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/crierhq/crier/auth"
	"github.com/crierhq/crier/internal/testenv"
)

// TestHistoryAcrossNodes: GET /history on one node answers what was published on the
// other, with the same authorisation as /events, and a retry with the same key but
// other data is refused on either node.
func TestHistoryAcrossNodes(t *testing.T) {
	r := testenv.StartRedis(t)
	args := nodeArgs(r, "-private-topics", "user/*", "-history", "3")
	a := testenv.Start(t, args, "CRIER_JWT_KEY="+jwtKey)
	b := testenv.Start(t, args, "CRIER_JWT_KEY="+jwtKey)
	var news []string
	for _, d := range []string{"n0", "n1", "n2", "n3"} {
		_, id := publish(t, a, "topic=news&event=headline", d)
		news = append(news, id)
	}
	_, mine := publish(t, a, "topic=user/42&event=note", "for 42")
	tok42 := tokenFor(t, auth.Patterns{"user/42"}, nil)
	tok43 := tokenFor(t, auth.Patterns{"user/43"}, nil)

	get := func(query, bearer string) (int, struct {
		Topic  string
		Events []struct{ ID, Event string }
		Missed bool
	}) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, b.URL+"/history?"+query, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out struct {
			Topic  string
			Events []struct{ ID, Event string }
			Missed bool
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("GET /history?%s: %d %q", query, resp.StatusCode, raw)
		}
		return resp.StatusCode, out
	}
	ids := func(evs []struct{ ID, Event string }) []string {
		var out []string
		for _, ev := range evs {
			out = append(out, ev.ID)
		}
		return out
	}
	if code, h := get("topic=news", ""); code != 200 || len(h.Events) != 3 || h.Events[0].ID != news[1] || h.Missed {
		t.Errorf("news on the other node: %d %+v, want n1..n3", code, h)
	}
	if code, h := get("topic=news&after="+news[0], ""); code != 200 || h.Missed || len(h.Events) != 3 {
		t.Errorf("news after n0, which left history: %d %+v, want n1..n3, nothing missed after n0", code, h)
	}
	if code, h := get("topic=news&after=1", ""); code != 200 || !h.Missed || len(h.Events) != 3 {
		t.Errorf("news from the beginning of time: %d %+v, want n1..n3 and missed", code, h)
	}
	if _, h := get("topic=news&after="+news[2]+"&limit=1", ""); len(h.Events) != 1 || h.Events[0].ID != news[3] {
		t.Errorf("after n2, limit 1: %v, want [%s]", ids(h.Events), news[3])
	}
	for _, tc := range []struct {
		name, query, bearer string
		want                int
	}{
		{"private, granted", "topic=user/42", tok42, 200},
		{"private, publish token", "topic=user/42", token, 200},
		{"private, not granted", "topic=user/42", tok43, 403},
		{"private, no token", "topic=user/42", "", 401},
		{"unknown topic", "topic=nothing-here", "", 200},
		{"bad after", "topic=news&after=yesterday", "", 400},
	} {
		req, _ := http.NewRequest(http.MethodGet, b.URL+"/history?"+tc.query, nil)
		if tc.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+tc.bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	if _, h := get("topic=user/42", tok42); len(h.Events) != 1 || h.Events[0].ID != mine {
		t.Errorf("user/42: %v, want [%s]", ids(h.Events), mine)
	}

	// Keys across nodes: the same key and event is a retry; other data is refused.
	_, first := publish(t, a, "topic=news&event=once", "x", "Idempotency-Key", "k1")
	if code, again := publish(t, b, "topic=news&event=once", "x", "Idempotency-Key", "k1"); code != 200 || again != first {
		t.Errorf("retry on the other node: %d %s, want 200 %s", code, again, first)
	}
	if code, _ := publish(t, b, "topic=news&event=once", "y", "Idempotency-Key", "k1"); code != http.StatusUnprocessableEntity {
		t.Errorf("same key, other data, on the other node: %d, want 422", code)
	}
}
