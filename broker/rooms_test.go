package broker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/crierhq/crier/broker"
)

func isRoom(topic string) bool { return strings.HasPrefix(topic, "room/") }

// BenchmarkRoomJoinLeave opens and closes one stream in a room of members users, each
// with a stream following the room. "tab": the stream is another tab of a user already
// there, so nothing is announced and the op is the room's bookkeeping alone, which must
// not grow with the room. "user": a new user, whose join and leave reach every member
// (drained, as a stream writer would): the cost per delivery must not grow either.
func BenchmarkRoomJoinLeave(b *testing.B) {
	for _, members := range []int{100, 1000, 10000} {
		for _, who := range []string{"tab", "user"} {
			b.Run(fmt.Sprintf("members=%d/%s", members, who), func(b *testing.B) {
				// As in BenchmarkPresence, queues hold every later arrival's join.
				br := broker.New(broker.Options{Rooms: isRoom, Encode: wireStub, Buffer: members + 2})
				defer br.Close()
				room := []string{"room/1"}
				ss, batch := crowd(b, br, members, func(i int) broker.Request {
					return broker.Request{Topics: room, User: fmt.Sprint("u", i)}
				})
				req := broker.Request{Topics: room, User: "u0"}
				if who == "user" {
					req.User = "newcomer"
				}
				b.ReportAllocs()
				for b.Loop() {
					s, err := br.Subscribe(req)
					if err != nil {
						b.Fatal(err)
					}
					s.Close()
					if who == "user" {
						for _, s := range ss {
							batch = takeN(s, batch, 2)
						}
					}
				}
				if who == "user" {
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2*members), "ns/delivery")
				}
			})
		}
	}
}

// FuzzRoomEvent: whatever the topic and user (a JWT's sub may hold anything), a room
// event's data is one JSON object that gives them back, so no user can forge a field.
func FuzzRoomEvent(f *testing.F) {
	f.Add("room/1", "alice", 2, 1)
	f.Add("room/\"x\"", "a\"b\\c\u2028\x00\n", 0, 0)
	f.Add("", "\xff\xfe", -1, 1<<40)
	f.Fuzz(func(t *testing.T, topic, user string, members, conns int) {
		ev := broker.RoomEvent(1, time.Unix(0, 0), broker.NameJoin, topic, user, members, conns)
		var got struct {
			Topic, User          string
			Members, Connections int
			Time                 string
		}
		dec := json.NewDecoder(bytes.NewReader(ev.Data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil || dec.More() {
			t.Fatalf("data %q is not one JSON object of the room's fields: %v", ev.Data, err)
		}
		if bytes.ContainsAny(ev.Data, "\r\n") {
			t.Fatalf("data %q holds a line break", ev.Data)
		}
		if utf8.ValidString(topic) && utf8.ValidString(user) && (got.Topic != topic || got.User != user) {
			t.Fatalf("got topic %q user %q, want %q %q", got.Topic, got.User, topic, user)
		}
		if got.Members != members || got.Connections != conns || got.Time != "1970-01-01T00:00:00Z" {
			t.Fatalf("got %+v from %q", got, ev.Data)
		}
	})
}

// markBus is a Bus whose room counts get increasing marks, which a test hands back
// through Deliver as a log would.
type markBus struct {
	herdBus
	marks uint64
}

func (m *markBus) Occupy(string, string, int) uint64 { m.marks++; return m.marks }

// roomUsers lists the users of room events.
func roomUsers(t *testing.T, evs []*broker.Event) []string {
	t.Helper()
	out := make([]string, len(evs))
	for i, ev := range evs {
		var p struct{ User string }
		if err := json.Unmarshal(ev.Data, &p); err != nil || ev.Name != broker.NameJoin {
			t.Fatalf("%s %s is not a join: %v", ev.Name, ev.Data, err)
		}
		out[i] = p.User
	}
	return out
}

// TestRoomHeardFromMark: through a Bus, a stream hears a room from the mark of its
// arrival on, the point where the log carries it: the room events before it are older,
// though this node reads them after the stream opened. A mark reaches no stream, and one
// that never comes (lost to a Redis outage) holds nothing back for longer than a few
// seconds of the log.
func TestRoomHeardFromMark(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{Bus: &markBus{}, Rooms: isRoom})
		start := uint64(time.Now().UnixMicro())
		b.Begin(start)
		join := func(id uint64, user string) *broker.Event {
			return broker.RoomEvent(id, time.Now(), broker.NameJoin, "room/1", user, 1, 1)
		}
		room := []string{"room/1"}
		alice := subscribe(t, b, broker.Request{Topics: room, User: "alice"}) // mark 1
		tab := subscribe(t, b, broker.Request{Topics: room, User: "alice"})   // mark 2: no join
		b.Deliver(
			join(start+1, "old"),
			join(start+2, "alice").WithMark(1),
			broker.Mark(start+3, 2),
			join(start+4, "bob"),
		)
		for _, c := range []struct {
			s    *broker.Subscription
			want []string
		}{
			{alice, []string{"alice", "bob"}},
			{tab, []string{"bob"}},
		} {
			if got := roomUsers(t, drain(t, c.s)); !slices.Equal(got, c.want) {
				t.Errorf("got joins of %v, want %v", got, c.want)
			}
		}

		lost := subscribe(t, b, broker.Request{Topics: room, User: "carol"}) // mark 3, never in the log
		late := start + uint64(10*time.Second/time.Microsecond)
		b.Deliver(join(start+5, "dave"), join(late, "erin"))
		if got := roomUsers(t, drain(t, lost)); !slices.Equal(got, []string{"erin"}) {
			t.Errorf("stream whose mark was lost got joins of %v, want erin's", got)
		}
		if got := roomUsers(t, drain(t, alice)); !slices.Equal(got, []string{"dave", "erin"}) {
			t.Errorf("got joins of %v, want dave's and erin's", got)
		}
	})
}
