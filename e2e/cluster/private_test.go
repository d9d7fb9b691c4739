package cluster_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crierhq/crier/auth"
	"github.com/crierhq/crier/internal/testenv"
)

const jwtKey = "cluster-test-secret-of-32-bytes!"

// tokenFor signs a token that lets a stream follow subscribe and a backend publish to publish.
func tokenFor(t *testing.T, subscribe, publish auth.Patterns) string {
	t.Helper()
	tok, err := auth.Sign([]byte(jwtKey), auth.Grants{Subscribe: subscribe, Publish: publish}, "", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestPrivateEventsStayPrivateAcrossNodes: events on a private topic, published on either
// node, reach only the streams authorized for that topic on every node, live and through
// a resume on the other node; presence crossing nodes names no topic.
func TestPrivateEventsStayPrivateAcrossNodes(t *testing.T) {
	r := testenv.StartRedis(t)
	args := nodeArgs(r, "-private-topics", "user/*", "-history", "100")
	a := testenv.Start(t, args, "CRIER_JWT_KEY="+jwtKey)
	b := testenv.Start(t, args, "CRIER_JWT_KEY="+jwtKey)
	tok42 := tokenFor(t, auth.Patterns{"user/42"}, nil)
	tok43 := tokenFor(t, auth.Patterns{"user/43"}, nil)
	openOn := func(n *testenv.Process, topic, tok, lastID string) *stream {
		q := "/events"
		if topic != "" {
			q += "?topic=" + url.QueryEscape(topic) + "&access_token=" + tok
		}
		return open(t, n.URL+q, lastID)
	}
	// until returns the data of every event up to the one named mark.
	until := func(s *stream, mark string) []string {
		t.Helper()
		var seen []string
		for {
			ev := s.next(wait)
			seen = append(seen, ev.Name+" "+ev.Data)
			if ev.Name == mark {
				return seen
			}
		}
	}
	noSecret := func(who string, seen []string) {
		t.Helper()
		for _, d := range seen {
			if strings.Contains(d, "secret") || strings.Contains(d, "user/") {
				t.Errorf("%s received %q", who, d)
			}
		}
	}

	owner := openOn(a, "user/42", tok42, "")
	other := openOn(b, "user/43", tok43, "")
	public := openOn(b, "", "", "")
	_, start := publish(t, a, "event=start", "-")
	publish(t, a, "topic=user/42&event=private", "secret from A")
	publish(t, b, "topic=user/42&event=private", "secret from B")
	publish(t, a, "topic=user/43&event=private", "for 43")
	publish(t, b, "event=mark", "-")

	got := strings.Join(until(owner, "mark"), "\n")
	if !strings.Contains(got, "secret from A") || !strings.Contains(got, "secret from B") {
		t.Errorf("the user/42 stream on node A missed its events:\n%s", got)
	}
	noSecret("a user/43 stream on node B", until(other, "mark"))
	noSecret("a public stream on node B", until(public, "mark"))

	// Resuming on node B from before the private events replays from Redis, filtered.
	resumed := openOn(b, "user/43", tok43, start)
	replay := until(resumed, "mark")
	noSecret("a user/43 stream resuming on node B", replay)
	if !strings.Contains(strings.Join(replay, "\n"), "for 43") {
		t.Errorf("the resumed user/43 stream did not replay its own event: %q", replay)
	}
	// No way in without the grant, on either node.
	for _, n := range []*testenv.Process{a, b} {
		if code := status(t, n.URL+"/events?topic=user/42"); code != http.StatusUnauthorized {
			t.Errorf("user/42 without a token: %d, want 401", code)
		}
		if code := status(t, n.URL+"/events?topic=user/42&access_token="+tok43); code != http.StatusForbidden {
			t.Errorf("user/42 with user/43's token: %d, want 403", code)
		}
	}
}
