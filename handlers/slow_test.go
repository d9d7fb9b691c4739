package handlers_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
)

// TestStalledReader opens a stream that never reads its socket. Publishing must go on at
// full speed, another stream must receive everything, the stalled one is cut off, and
// the server's memory stays bounded while it lingers.
func TestStalledReader(t *testing.T) {
	const buffer, events, size = 16, 600, 16 << 10
	s := newServer(t, broker.Options{Buffer: buffer, History: 4}, handlers.Options{MaxBody: 1 << 20})

	conn, err := net.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096) // keep the kernel from soaking up the backlog
	}
	fmt.Fprintf(conn, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
	status, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.Contains(status, "200") {
		t.Fatalf("stalled stream: %q", status)
	}
	// From here on the stalled client reads nothing.

	// The healthy reader gets each event before the next is published, so only the
	// stalled stream ever falls behind.
	reader := s.open(t, "", nil)
	received := make(chan error)
	go func() {
		for range events {
			_, err := reader.Next()
			received <- err
		}
	}()

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	payload := strings.Repeat("x", size)
	for i := range events {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := s.broker.Publish(ctx, broker.Message{Data: []byte(payload)}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		cancel()
		if err := <-received; err != nil {
			t.Fatalf("the reading stream lost event %d: %v", i, err)
		}
	}
	if st := s.broker.Stats(); st.CutOff != 1 {
		t.Errorf("cut-offs %d, want 1 (the stalled stream)", st.CutOff)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	// Published: 600 x 16 KiB = 9.4 MiB. Bounded: history (4) + one queue (16) + the
	// stalled writer's batch, about 0.6 MiB; allow generous slack for the runtime.
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 4<<20 {
		t.Errorf("heap grew by %d KiB while a stalled reader lingered", grew>>10)
	}
}
