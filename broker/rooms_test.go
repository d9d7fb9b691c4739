package broker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
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
				br := broker.New(broker.Options{Rooms: isRoom, Encode: wireStub})
				defer br.Close()
				room := []string{"room/1"}
				ss := make([]*broker.Subscription, members)
				for i := range ss {
					s, err := br.Subscribe(broker.Request{Topics: room, User: fmt.Sprint("u", i)})
					if err != nil {
						b.Fatal(err)
					}
					ss[i] = s
				}
				var batch []*broker.Event
				for i, s := range ss {
					batch = takeN(s, batch, members-i) // the join of every later arrival
				}
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
