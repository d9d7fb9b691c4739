package redisbus_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/broker/redisbus"
	"github.com/crierhq/crier/internal/testenv"
)

// TestJoinWhileRedisIsDown: a stream that opens before its node could read the log (Redis
// was down at start-up) still hears its own join once Redis is up: the node sends
// nothing before it knows where its reader starts, since what it appended earlier would
// lie behind the reader.
func TestJoinWhileRedisIsDown(t *testing.T) {
	r := testenv.StartRedis(t)
	r.Stop()
	bus, err := redisbus.New(redisbus.Options{URL: r.URL, Prefix: newPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(broker.Options{Bus: bus, Rooms: func(string) bool { return true }})
	bus.Start(b)
	defer bus.Close()
	defer b.Close()
	s, err := b.Subscribe(broker.Request{Topics: []string{"room/1"}, User: "early"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r.Start()
	select {
	case <-s.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("no join within 20s of redis coming up")
	}
	evs, _ := s.Take(nil)
	if len(evs) == 0 || evs[0].Name != broker.NameJoin || evs[0].Topic != "room/1" {
		t.Fatalf("got %v, want the stream's own join", evs)
	}
}

// laggingFeed is a broker whose reader can be held up: a node that reads the log late.
type laggingFeed struct {
	redisbus.Feed
	mu      sync.Mutex
	hold    chan struct{} // when set, the next Deliver waits until it is closed
	holding chan struct{} // closed once that Deliver waits
}

// lag makes the next Deliver wait until release is called; held is closed once it does.
func (f *laggingFeed) lag() (held <-chan struct{}, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hold, holding := make(chan struct{}), make(chan struct{})
	f.hold, f.holding = hold, holding
	return holding, sync.OnceFunc(func() { close(hold) })
}

func (f *laggingFeed) Deliver(evs ...*broker.Event) {
	f.mu.Lock()
	hold, holding := f.hold, f.holding
	f.hold = nil
	f.mu.Unlock()
	if hold != nil {
		close(holding)
		<-hold
	}
	f.Feed.Deliver(evs...)
}

// expectJoin checks that r's next event is the join of user into room/1, with members.
func expectJoin(t *testing.T, r *reader, user string, members int) {
	t.Helper()
	ev := r.next()
	want := broker.RoomEvent(ev.ID, ev.Time, broker.NameJoin, "room/1", user, members, 1)
	if ev.Name != want.Name || ev.Topic != want.Topic || string(ev.Data) != string(want.Data) {
		t.Fatalf("got %s %s, want join of %s with %d members", ev.Name, ev.Data, user, members)
	}
}

// TestRoomHeardFromArrival: a stream that arrives in a room on a node whose reader is
// behind the log hears the room from its own arrival on, not the joins before it that
// the node reads only afterwards: its own join comes first, and for a second tab, which
// makes no join, the next arrival's.
func TestRoomHeardFromArrival(t *testing.T) {
	r := testenv.StartRedis(t)
	prefix := newPrefix()
	opts := broker.Options{Rooms: func(topic string) bool { return strings.HasPrefix(topic, "room/") }}
	feed := &laggingFeed{}
	a := startFed(t, r.URL, prefix, opts, nil, func(b *broker.Broker) redisbus.Feed { feed.Feed = b; return feed })
	b := startNode(t, r.URL, prefix, opts, nil)
	room := []string{"room/1"}

	// The watcher's join reaches node A's reader, which holds it while alice arrives
	// there.
	held, release := feed.lag()
	defer release()
	watcher := sub(t, b, broker.Request{Topics: room, User: "watcher"})
	expectJoin(t, watcher, "watcher", 1)
	<-held
	alice := sub(t, a, broker.Request{Topics: room, User: "alice"})
	expectJoin(t, watcher, "alice", 2) // alice's arrival is in the log
	release()
	expectJoin(t, alice, "alice", 2)

	// Again for alice's second tab, whose arrival makes no join: the first event it
	// hears is the join of dave, who arrives on B once the tab is counted, not carol's
	// from before.
	held, release = feed.lag()
	defer release()
	sub(t, b, broker.Request{Topics: room, User: "carol"})
	expectJoin(t, watcher, "carol", 3)
	<-held
	tab := sub(t, a, broker.Request{Topics: room, User: "alice"})
	testenv.Eventually(t, 10*time.Second, func() error {
		r, err := b.Room(context.Background(), "room/1", 10)
		if err == nil && (len(r.Users) == 0 || r.Users[0].User != "alice" || r.Users[0].Connections != 2) {
			err = fmt.Errorf("room/1: %+v, want alice with 2 connections", r)
		}
		return err
	})
	sub(t, b, broker.Request{Topics: room, User: "dave"})
	expectJoin(t, watcher, "dave", 4)
	release()
	expectJoin(t, tab, "dave", 4)
}
