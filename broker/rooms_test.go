package broker_test

import (
	"fmt"
	"strings"
	"testing"

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
