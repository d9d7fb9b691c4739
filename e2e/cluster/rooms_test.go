package cluster_test

import (
	"encoding/json"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/crierhq/crier/auth"
	"github.com/crierhq/crier/internal/testenv"
)

// room is the payload of join and leave.
type room struct {
	Topic       string
	User        string
	Members     int
	Connections int
}

func parseRoom(t *testing.T, ev event) room {
	t.Helper()
	var r room
	if err := json.Unmarshal([]byte(ev.Data), &r); err != nil {
		t.Fatalf("%s %q: %v", ev.Name, ev.Data, err)
	}
	return r
}

// expectRoom checks that s's next event is name about user in room/1, with the counts.
func (s *stream) expectRoom(name, user string, members, conns int) {
	s.t.Helper()
	s.expectRoomWithin(wait, name, user, members, conns)
}

func (s *stream) expectRoomWithin(d time.Duration, name, user string, members, conns int) {
	s.t.Helper()
	ev := s.next(d)
	if got := parseRoom(s.t, ev); ev.Name != name || got != (room{"room/1", user, members, conns}) {
		s.t.Fatalf("got %s %s, want %s of %s with %d members, %d connections", ev.Name, ev.Data, name, user, members, conns)
	}
}

type roomAnswer struct {
	Members int
	Users   []struct {
		User        string
		Connections int
	}
}

func presenceOf(t *testing.T, node *testenv.Process, topic string) roomAnswer {
	t.Helper()
	resp, err := client.Get(node.URL + "/presence?topic=" + topic)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a roomAnswer
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &a) != nil {
		t.Fatalf("GET /presence on %s: %d %s", node.Addr, resp.StatusCode, raw)
	}
	return a
}

// TestRoomsAcrossNodes: a room spans the cluster. A join on node A reaches node B's
// streams; a user with tabs on both nodes is one member; GET /presence on either node
// counts everyone. When node A is SIGKILLed, its users leave the room once, within the
// node timeout, and a user who still has a tab on B does not leave.
func TestRoomsAcrossNodes(t *testing.T) {
	r := testenv.StartRedis(t)
	args := nodeArgs(r, "-presence=false", "-presence-topics", "room/*")
	a := testenv.Start(t, args, "CRIER_JWT_KEY="+jwtKey)
	b := testenv.Start(t, args, "CRIER_JWT_KEY="+jwtKey)
	nodes := []*testenv.Process{a, b}
	// A token on a public room only names its user.
	withToken := func(sub string) string {
		tok, err := auth.Sign([]byte(jwtKey), auth.Grants{}, sub, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return "&access_token=" + tok
	}

	watcher := open(t, b.URL+"/events?topic=room/1"+withToken("watcher"), "")
	watcher.expectRoom("join", "watcher", 1, 1)
	aliceA := open(t, a.URL+"/events?topic=room/1"+withToken("alice"), "")
	aliceA.expectRoom("join", "alice", 2, 1)
	watcher.expectRoom("join", "alice", 2, 1)
	// alice's second tab, on B: no join; bob only on A.
	open(t, b.URL+"/events?topic=room/1"+withToken("alice"), "")
	bob := open(t, a.URL+"/events?topic=room/1"+withToken("bob"), "")
	watcher.expectRoom("join", "bob", 3, 1)
	bob.expectRoom("join", "bob", 3, 1)
	for _, n := range nodes {
		got := presenceOf(t, n, "room/1")
		if got.Members != 3 || len(got.Users) != 3 || got.Users[0].User != "alice" || got.Users[0].Connections != 2 {
			t.Fatalf("GET /presence on %s: %+v, want alice (2), bob, watcher", n.Addr, got)
		}
	}

	a.Signal(syscall.SIGKILL)
	start := time.Now()
	// bob's only stream was on A: he leaves, once. alice still has her tab on B.
	watcher.expectRoomWithin(15*time.Second, "leave", "bob", 2, 0)
	t.Logf("the killed node's member left after %s", time.Since(start).Round(100*time.Millisecond))
	if got := presenceOf(t, b, "room/1"); got.Members != 2 || got.Users[0].Connections != 1 {
		t.Fatalf("GET /presence after the kill: %+v, want alice (1) and watcher", got)
	}
	// Nothing more: the next room event is the next arrival's.
	open(t, b.URL+"/events?topic=room/1"+withToken("carol"), "")
	watcher.expectRoom("join", "carol", 3, 1)
}
