package redisbus_test

import (
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
