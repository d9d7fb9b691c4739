package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/crierhq/crier/e2e/internal/sseconn"
	"github.com/crierhq/crier/internal/testenv"
)

// note is what a stream of TestRedisComesBackEmpty saw: an event other than presence,
// or how it ended.
type note struct {
	stream int
	ev     sseconn.Event
	err    error
}

// TestRedisComesBackEmpty: Redis restarted without persistence has lost the whole log.
// None of the 300 streams of three nodes ends: each gets exactly one missed event in-band,
// then every event published since; and the cluster's presence count is right again.
func TestRedisComesBackEmpty(t *testing.T) {
	const streams = 300
	r := testenv.StartRedis(t)
	nodes := startNodes(t, r, 3, "-buffer", "4096")
	notes := make(chan note, streams)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range streams {
		addr := nodes[i%len(nodes)].Addr
		s, err := sseconn.Open(ctx, addr, "/events", nil)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if err := s.Expect200(); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		t.Cleanup(func() { s.Close() })
		go func() {
			for {
				ev, err := s.Next()
				if err != nil {
					if ctx.Err() == nil {
						notes <- note{stream: i, err: err}
					}
					return
				}
				if ev.Name != "new_user" && ev.Name != "user_left" {
					notes <- note{stream: i, ev: ev}
				}
			}
		}()
	}
	// collect gathers notes until every stream has seen want events named name, failing
	// on any stream that ends; it returns the other events each stream saw meanwhile.
	collect := func(name string, want int) [][]sseconn.Event {
		t.Helper()
		got := make([]int, streams)
		others := make([][]sseconn.Event, streams)
		done := 0
		timeout := time.After(30 * time.Second)
		for done < streams {
			select {
			case n := <-notes:
				if n.err != nil {
					t.Fatalf("stream %d on %s ended: %v", n.stream, nodes[n.stream%len(nodes)].Addr, n.err)
				}
				if n.ev.Name != name {
					others[n.stream] = append(others[n.stream], n.ev)
					continue
				}
				if got[n.stream]++; got[n.stream] == want {
					done++
				}
			case <-timeout:
				t.Fatalf("after 30s, %d of %d streams had their %d %q events", done, streams, want, name)
			}
		}
		return others
	}

	if code, _ := publish(t, nodes[0], "event=before", "1"); code != http.StatusOK {
		t.Fatalf("publish: %d", code)
	}
	if others := collect("before", 1); len(others[0]) > 0 {
		t.Fatalf("before the restart, stream 0 got %+v", others[0])
	}

	r.Stop()
	r.Forget()
	r.Start()
	start := time.Now()
	for _, n := range nodes {
		testenv.WaitOK(t, client, n.URL+"/readyz", 30*time.Second, func() string { return "" })
	}
	t.Logf("nodes ready %s after redis came back empty", time.Since(start).Round(time.Millisecond))
	for i, n := range nodes {
		if code, _ := publish(t, n, "event=after", fmt.Sprint(i)); code != http.StatusOK {
			t.Fatalf("publish on node %d after redis came back empty: %d", i, code)
		}
	}
	others := collect("after", len(nodes))
	for i, evs := range others {
		if len(evs) != 1 || evs[0].Name != "missed" {
			t.Fatalf("stream %d: besides the events published after the restart, got %+v; want one missed", i, evs)
		}
		var notice struct{ Message, LastEventID string }
		if err := json.Unmarshal([]byte(evs[0].Data), &notice); err != nil || notice.Message == "" || notice.LastEventID == "" {
			t.Fatalf("stream %d: missed %q (%v), want a message and a lastEventId", i, evs[0].Data, err)
		}
	}

	t.Logf("every stream had its missed event and the events published since %s after redis came back",
		time.Since(start).Round(time.Millisecond))

	// Each node told the emptied Redis again who is connected: a new stream is counted
	// with all the others, once the nodes have beaten.
	testenv.Eventually(t, 15*time.Second, func() error {
		s, err := sseconn.Open(ctx, nodes[0].Addr, "/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Expect200(); err != nil {
			t.Fatal(err)
		}
		ev, err := s.Next()
		s.Close()
		if err != nil || ev.Name != "new_user" {
			t.Fatalf("new stream: got %+v, %v; want its new_user", ev, err)
		}
		var p presence
		_ = json.NewDecoder(strings.NewReader(ev.Data)).Decode(&p)
		if p.Subscribers != streams+1 {
			return fmt.Errorf("a new stream's new_user counts %d subscribers, want %d", p.Subscribers, streams+1)
		}
		return nil
	})
	t.Logf("presence counted right again %s after redis came back", time.Since(start).Round(time.Millisecond))
	select {
	case n := <-notes:
		if n.err != nil {
			t.Fatalf("stream %d ended: %v", n.stream, n.err)
		}
	default:
	}
}
