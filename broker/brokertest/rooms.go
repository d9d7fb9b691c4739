package brokertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
)

// roomEvent is the payload of join and leave.
type roomEvent struct {
	Topic       string `json:"topic"`
	User        string `json:"user"`
	Members     int    `json:"members"`
	Connections int    `json:"connections"`
	Time        string `json:"time"`
}

func isRoom(topic string) bool { return strings.HasPrefix(topic, "room/") }

// expectRoom checks that s's next event is name about user in topic, with the counts.
func expectRoom(t *testing.T, s *broker.Subscription, name, topic, user string, members, conns int) {
	t.Helper()
	ev := next(t, s)
	var got roomEvent
	if err := json.Unmarshal(ev.Data, &got); err != nil {
		t.Fatalf("%s %s: %v", ev.Name, ev.Data, err)
	}
	want := roomEvent{Topic: topic, User: user, Members: members, Connections: conns, Time: got.Time}
	if ev.Name != name || ev.Topic != topic || got != want {
		t.Fatalf("got %s on %q %s, want %s %+v", ev.Name, ev.Topic, ev.Data, name, want)
	}
	if _, err := time.Parse(time.RFC3339, got.Time); err != nil {
		t.Fatalf("%s: time %q: %v", name, got.Time, err)
	}
	if ev.Retained() {
		t.Fatalf("%s is retained; room events must not be replayed", name)
	}
}

func expectMembers(t *testing.T, b Broker, topic string, want ...broker.RoomUser) {
	t.Helper()
	broker.SortRoomUsers(want)
	r, err := b.Room(context.Background(), topic, 100)
	if err != nil {
		t.Fatalf("Room(%q): %v", topic, err)
	}
	if r.Topic != topic || r.Members != len(want) || fmt.Sprint(r.Users) != fmt.Sprint(want) {
		t.Fatalf("Room(%q) = %+v, want %d members %v", topic, r, len(want), want)
	}
}

// testRooms: a user's first stream in a room announces it to the room's followers, its
// own stream included; further streams of the same user do not; the last one to end
// announces the leave. Streams off the room hear nothing. Nothing announced is retained.
// Where the suite must show that nothing arrived, it makes something else arrive through
// the same path (another user's join) and checks that it comes next; and it reads the
// room once such a join has shown that everything before it was counted (with a Bus,
// Room reads the cluster's state, which streams' arrivals reach a moment later).
func testRooms(t *testing.T, nb New) {
	b := nb(t, broker.Options{History: 10, Rooms: isRoom})
	const room = "room/1"
	a1 := subscribe(t, b, broker.Request{Topics: []string{room}, User: "alice"})
	expectRoom(t, a1, broker.NameJoin, room, "alice", 1, 1)
	off := subscribe(t, b, broker.Request{Topics: []string{"room/2", "news"}, User: "alice"})
	expectRoom(t, off, broker.NameJoin, "room/2", "alice", 1, 1)
	a2 := subscribe(t, b, broker.Request{Topics: []string{"news", room}, User: "alice"})
	anon := subscribe(t, b, broker.Request{Topics: []string{room}})
	for _, s := range []*broker.Subscription{a1, a2, anon} {
		expectRoom(t, s, broker.NameJoin, room, anon.ID(), 2, 1)
	}
	expectMembers(t, b, room, broker.RoomUser{User: "alice", Connections: 2}, broker.RoomUser{User: anon.ID(), Connections: 1})
	expectMembers(t, b, "room/2", broker.RoomUser{User: "alice", Connections: 1})
	expectMembers(t, b, "room/empty")
	if _, err := b.Room(context.Background(), "news", 100); !errors.Is(err, broker.ErrNotRoom) {
		t.Fatalf("Room(news) = %v, want ErrNotRoom", err)
	}

	a3 := subscribe(t, b, broker.Request{Topics: []string{room}, User: "alice"})
	bob := subscribe(t, b, broker.Request{Topics: []string{room}, User: "bob"})
	// alice's third stream announced nothing: bob's join comes next.
	for _, s := range []*broker.Subscription{a1, a2, anon, a3, bob} {
		expectRoom(t, s, broker.NameJoin, room, "bob", 3, 1)
	}
	expectMembers(t, b, room, broker.RoomUser{User: "alice", Connections: 3},
		broker.RoomUser{User: anon.ID(), Connections: 1}, broker.RoomUser{User: "bob", Connections: 1})

	a1.Close()
	a2.Close()
	carol := subscribe(t, b, broker.Request{Topics: []string{room}, User: "carol"})
	// alice still has a3: no leave before carol's join.
	for _, s := range []*broker.Subscription{anon, a3, bob, carol} {
		expectRoom(t, s, broker.NameJoin, room, "carol", 4, 1)
	}
	a3.Close()
	for _, s := range []*broker.Subscription{anon, bob, carol} {
		expectRoom(t, s, broker.NameLeave, room, "alice", 3, 0)
	}
	bob.Close()
	expectRoom(t, anon, broker.NameLeave, room, "bob", 2, 0)
	expectMembers(t, b, room, broker.RoomUser{User: anon.ID(), Connections: 1}, broker.RoomUser{User: "carol", Connections: 1})
	// room/2 and news heard none of it.
	publish(t, b, broker.Message{Topic: "news", Data: []byte(`"n"`)})
	if ev := next(t, off); ev.Name != broker.NameMessage {
		t.Fatalf("a stream of another room got %s %s", ev.Name, ev.Data)
	}
	quiet(t, off)
}

// testRoomsWithPresence: with global presence on as well, a stream hears its own new_user
// before its own join, and its leave precedes its user_left.
func testRoomsWithPresence(t *testing.T, nb New) {
	b := nb(t, broker.Options{Presence: true, Rooms: isRoom})
	const room = "room/p"
	a := subscribe(t, b, broker.Request{Topics: []string{room}, User: "ann"})
	expectPresence(t, a, broker.NameNewUser, a.ID(), 1)
	expectRoom(t, a, broker.NameJoin, room, "ann", 1, 1)
	c := subscribe(t, b, broker.Request{Topics: []string{room}})
	expectPresence(t, a, broker.NameNewUser, c.ID(), 2)
	expectRoom(t, a, broker.NameJoin, room, c.ID(), 2, 1)
	expectPresence(t, c, broker.NameNewUser, c.ID(), 2)
	expectRoom(t, c, broker.NameJoin, room, c.ID(), 2, 1)
	c.Close()
	expectRoom(t, a, broker.NameLeave, room, c.ID(), 1, 0)
	expectPresence(t, a, broker.NameUserLeft, c.ID(), 1)
}
