package hub

import (
	"net"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers/sse"
)

// TestWatchedBeforeHandedOver: a stream whose writer ends it the moment it has it (its
// socket closed, and the descriptor number taken at once by the next connection) is not
// left registered with the watcher under that number, where the new connection's notices
// would go to the dead stream and never to its own. The watcher learns of a stream before
// its writer does, so the writer's end removes it.
func TestWatchedBeforeHandedOver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// accept returns both ends of a new connection.
	accept := func() (client, server net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sc.Close() })
		return c, sc
	}
	// A hub whose writer does not run: the test plays it.
	h := &Hub{stop: make(chan struct{})}
	sh := &shard{h: h, wake: make(chan struct{}, 1), tick: maxTick}
	h.shards = []*shard{sh}
	w, err := newWatcher(h)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	h.watch = w

	b := broker.New(broker.Options{Encode: sse.Encode})
	defer b.Close()
	sub, err := b.Subscribe(broker.Request{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	_, conn := accept()
	out, fd := newSink(conn)
	s := &hstream{out: out, fd: fd, Stream: Stream{Sub: sub, Heartbeat: time.Hour, WriteTimeout: time.Hour}}
	reusedFD := -1
	handOver = func(s *hstream) {
		// The writer ends s at once, as it does when the first write fails.
		w.remove(s)
		_ = s.out.close()
		next, _ := accept() // the lowest free descriptor: the one just closed
		_, reusedFD = newSink(next)
	}
	defer func() { handOver = nil }()
	h.attach(s, conn)
	if reusedFD != fd {
		t.Fatalf("the next connection got descriptor %d, not %d: the test cannot tell", reusedFD, fd)
	}
	w.mu.Lock()
	dead := w.byFD[int32(fd)] == s
	w.mu.Unlock()
	if dead {
		t.Fatalf("descriptor %d, now another connection's, is watched for the ended stream", fd)
	}
}
