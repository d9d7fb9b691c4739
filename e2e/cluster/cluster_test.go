// Package cluster_test runs crier nodes as real processes on one real redis-server and
// checks the contract's Scale-out promises: one service across nodes, cluster-wide
// presence, resume on any node, Redis outages, a node killed without a goodbye, and
// many events in one order everywhere.
package cluster_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crierhq/crier/internal/testenv"
)

const token = "cluster-test-token"

// startNodes starts n crier nodes on r.
func startNodes(t *testing.T, r *testenv.Redis, n int, extra ...string) []*testenv.Process {
	t.Helper()
	var nodes []*testenv.Process
	for range n {
		nodes = append(nodes, testenv.Start(t, nodeArgs(r, extra...)))
	}
	return nodes
}

func nodeArgs(r *testenv.Redis, extra ...string) []string {
	return append([]string{"-redis-url", r.URL, "-publish-token", token, "-heartbeat", "200ms",
		"-log-level", "warn"}, extra...)
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// publish posts a text event and returns the status and the id.
func publish(t *testing.T, node *testenv.Process, query, body string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, node.URL+"/publish?"+query, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/plain")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out.ID
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

type presence struct {
	Subscriber  string
	Subscribers int
}

func parsePresence(t *testing.T, ev event) presence {
	t.Helper()
	var p presence
	if err := json.Unmarshal([]byte(ev.Data), &p); err != nil {
		t.Fatalf("presence %q: %v", ev.Data, err)
	}
	return p
}

const wait = 10 * time.Second

func TestTwoNodesAreOneService(t *testing.T) {
	r := testenv.StartRedis(t)
	nodes := startNodes(t, r, 2)
	a, b := nodes[0], nodes[1]

	sa := open(t, a.URL+"/events?topic=news", "")
	own := parsePresence(t, sa.nextNamed("new_user", wait))
	if own.Subscribers != 1 {
		t.Fatalf("first stream: subscribers %d, want 1", own.Subscribers)
	}
	sb := open(t, b.URL+"/events?topic=news", "")
	for name, s := range map[string]*stream{"node A": sa, "node B": sb} {
		if p := parsePresence(t, s.nextNamed("new_user", wait)); p.Subscribers != 2 {
			t.Fatalf("%s: new_user says %d subscribers, want 2 across the cluster", name, p.Subscribers)
		}
	}
	var ids []string
	for i, n := range []*testenv.Process{a, b, a, b} {
		code, id := publish(t, n, "topic=news&event=headline", fmt.Sprint(i))
		if code != http.StatusOK || len(id) != 16 {
			t.Fatalf("publish %d: %d %q", i, code, id)
		}
		ids = append(ids, id)
	}
	for name, s := range map[string]*stream{"node A": sa, "node B": sb} {
		for i, id := range ids {
			ev := s.nextNamed("headline", wait)
			if ev.ID != id || ev.Data != fmt.Sprint(i) {
				t.Fatalf("%s: event %d is %s %q, want %s %q", name, i, ev.ID, ev.Data, id, fmt.Sprint(i))
			}
		}
	}
	// Idempotency holds across nodes.
	_, first := publish(t, a, "topic=news&event=once", "x", "Idempotency-Key", "k1")
	_, again := publish(t, b, "topic=news&event=once", "x", "Idempotency-Key", "k1")
	if first != again {
		t.Fatalf("retry on another node with the same key: id %s, want %s", again, first)
	}

	// Node B restarts on its address; a client resumes there with an id it saw on A,
	// from before B's restart: the replay comes from Redis.
	sb.close()
	b.Signal(syscall.SIGTERM)
	if code, err := b.Wait(10 * time.Second); code != 0 || err != nil {
		t.Fatalf("node B exit %d %v", code, err)
	}
	_, later := publish(t, a, "topic=news&event=headline", "while B was down")
	b = testenv.StartAt(t, b.Addr, nodeArgs(r))
	resumed := open(t, b.URL+"/events?topic=news", ids[1])
	want := []string{ids[2], ids[3], first, later}
	for i, id := range want {
		ev := resumed.next(wait)
		for ev.Name == "new_user" || ev.Name == "user_left" {
			ev = resumed.next(wait)
		}
		if ev.ID != id {
			t.Fatalf("resume on a restarted node, event %d: got %s %s %q, want id %s", i, ev.ID, ev.Name, ev.Data, id)
		}
	}
}

func TestRedisRestartMidStream(t *testing.T) {
	r := testenv.StartRedis(t)
	nodes := startNodes(t, r, 2)
	a, b := nodes[0], nodes[1]
	sa := open(t, a.URL+"/events", "")
	sb := open(t, b.URL+"/events", "")
	_, before := publish(t, a, "event=before", "1")
	for _, s := range []*stream{sa, sb} {
		if ev := s.nextNamed("before", wait); ev.ID != before {
			t.Fatalf("got %s, want %s", ev.ID, before)
		}
	}

	r.Stop()
	heartbeats := []int64{sa.comments.Load(), sb.comments.Load()}
	for _, n := range nodes {
		if code, _ := publish(t, n, "event=during", "lost?"); code != http.StatusServiceUnavailable {
			t.Fatalf("publish while redis is down: %d, want 503", code)
		}
		if code := status(t, n.URL+"/readyz"); code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz while redis is down: %d, want 503", code)
		}
	}
	// The streams stay open through three heartbeats (600 ms) of the outage.
	testenv.Eventually(t, wait, func() error {
		for i, s := range []*stream{sa, sb} {
			if !s.isOpen() {
				t.Fatalf("stream %d ended while redis was down", i)
			}
			if got := s.comments.Load() - heartbeats[i]; got < 3 {
				return fmt.Errorf("stream %d: %d heartbeats since redis went down, want 3", i, got)
			}
		}
		return nil
	})

	r.Start()
	testenv.Eventually(t, wait, func() error {
		for _, n := range nodes {
			if code := status(t, n.URL+"/readyz"); code != http.StatusOK {
				return fmt.Errorf("node %s: /readyz %d after redis came back", n.Addr, code)
			}
		}
		return nil
	})
	code, after := publish(t, b, "event=after", "2")
	if code != http.StatusOK {
		t.Fatalf("publish after redis came back: %d", code)
	}
	for _, s := range []*stream{sa, sb} {
		ev := s.next(wait)
		if ev.Name != "after" || ev.ID != after || ev.ID <= before {
			t.Fatalf("after the outage: got %s %s, want after %s (> %s)", ev.Name, ev.ID, after, before)
		}
	}
}

func TestKilledNodeLeavesTheCount(t *testing.T) {
	r := testenv.StartRedis(t)
	nodes := startNodes(t, r, 3)
	var streams []*stream
	var ids []string
	for i, n := range nodes {
		s := open(t, n.URL+"/events", "")
		p := parsePresence(t, s.nextNamed("new_user", wait))
		if p.Subscribers != i+1 {
			t.Fatalf("stream %d: subscribers %d, want %d", i, p.Subscribers, i+1)
		}
		streams = append(streams, s)
		ids = append(ids, p.Subscriber)
	}
	nodes[2].Signal(syscall.SIGKILL)
	start := time.Now()
	for i, s := range streams[:2] {
		ev := s.nextNamed("user_left", 15*time.Second)
		if p := parsePresence(t, ev); p.Subscriber != ids[2] || p.Subscribers != 2 {
			t.Fatalf("stream %d: user_left %s, want %s with 2", i, ev.Data, ids[2])
		}
	}
	t.Logf("the killed node's subscriber was announced gone after %s", time.Since(start).Round(100*time.Millisecond))
	s := open(t, nodes[0].URL+"/events", "")
	if p := parsePresence(t, s.nextNamed("new_user", wait)); p.Subscribers != 3 {
		t.Fatalf("new stream after the kill: subscribers %d, want 3", p.Subscribers)
	}
}
