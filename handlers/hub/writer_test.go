package hub

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httputil"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers/sse"
)

// fakeSink is a connection that takes at most room bytes per write (0: none, so every
// write is EAGAIN; negative: everything).
type fakeSink struct {
	mu     sync.Mutex
	room   int
	out    bytes.Buffer
	closed bool
}

func (f *fakeSink) write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, io.ErrClosedPipe
	}
	n := len(b)
	if f.room >= 0 && n > f.room {
		n = f.room
	}
	f.out.Write(b[:n])
	if n < len(b) {
		return n, errAgain
	}
	return n, nil
}

func (f *fakeSink) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeSink) body() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.String()
}

// hubStream attaches a subscription of b to h through sink, as Adopt does after the
// head, and returns a channel that receives why it ended.
func hubStream(t *testing.T, h *Hub, b *broker.Broker, out sink, heartbeat, writeTimeout time.Duration) <-chan error {
	t.Helper()
	return hubStreamOf(t, h, b, broker.Request{}, out, heartbeat, writeTimeout)
}

// hubStreamOf is hubStream for the subscription req asks for.
func hubStreamOf(t *testing.T, h *Hub, b *broker.Broker, req broker.Request, out sink, heartbeat, writeTimeout time.Duration) <-chan error {
	t.Helper()
	sub, err := b.Subscribe(req)
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	h.held.Add(1)
	h.attach(&hstream{out: out, fd: -1, Stream: Stream{Sub: sub, Heartbeat: heartbeat, WriteTimeout: writeTimeout,
		Done: func(err error) { sub.Close(); ended <- err }}}, nil)
	return ended
}

// TestHubHeartbeat checks, on a fake clock, that the writer's one ticker sends a stream
// a heartbeat after -heartbeat idle, and none while events flow.
func TestHubHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker.New(broker.Options{Encode: sse.Encode})
		h := newHub(Options{Writers: 1, Coalesce: -1})
		out := &fakeSink{room: -1}
		ended := hubStream(t, h, b, out, 15*time.Second, 30*time.Second)
		beats := func() int { return strings.Count(out.body(), ": heartbeat\n") }

		time.Sleep(15 * time.Second)
		synctest.Wait()
		if beats() != 1 {
			t.Fatalf("after 15s idle: %d heartbeats, want 1", beats())
		}
		time.Sleep(10 * time.Second) // 25s: an event
		b.Publish(context.Background(), broker.Message{Data: []byte("x")})
		time.Sleep(5 * time.Second) // 30s
		synctest.Wait()
		if beats() != 1 {
			t.Fatalf("after an event: %d heartbeats, want still 1", beats())
		}
		time.Sleep(15 * time.Second) // 45s: idle for 20s
		synctest.Wait()
		if beats() != 2 {
			t.Fatalf("idle again: %d heartbeats, want 2", beats())
		}
		b.Close()
		if err := <-ended; !errors.Is(err, broker.ErrClosed) {
			t.Errorf("ended: %v, want %v", err, broker.ErrClosed)
		}
		h.Close()
		if !strings.HasSuffix(out.body(), "0\r\n\r\n") {
			t.Errorf("no last chunk: %q", out.body())
		}
	})
}

// pacedSink is a connection that takes everything, each write taking per.
type pacedSink struct {
	fakeSink
	per time.Duration
}

func (p *pacedSink) write(b []byte) (int, error) {
	time.Sleep(p.per)
	return p.fakeSink.write(b)
}

// TestBusyStreamSharesItsWriter: a stream with megabytes to write (a long queue here; in
// an overload, a queue refilled as fast as it is written) takes turns with the other
// streams of its writer, which keeps its clock meanwhile: an idle stream on the same
// writer gets its heartbeats while the busy one is written, not after.
func TestBusyStreamSharesItsWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker.New(broker.Options{Encode: sse.Encode, Buffer: 20000})
		defer b.Close()
		h := newHub(Options{Writers: 1, Coalesce: -1})
		defer h.Close()
		idle := &fakeSink{room: -1}
		hubStream(t, h, b, idle, 100*time.Millisecond, time.Hour)
		busy := &pacedSink{fakeSink: fakeSink{room: -1}, per: 50 * time.Millisecond}
		hubStreamOf(t, h, b, broker.Request{Topics: []string{"busy"}}, busy, time.Hour, time.Hour)
		synctest.Wait()
		data := []byte(strings.Repeat("x", 1000))
		for range 10000 { // 10 MB: 160 writes of 64 KiB, 8 s at 50 ms a write
			b.Publish(context.Background(), broker.Message{Topic: "busy", Data: data})
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := strings.Count(idle.body(), ": heartbeat\n"); n < 2 {
			t.Errorf("%d heartbeats to the idle stream in its first second beside the busy one, want one every 100 ms", n)
		}
		if n := strings.Count(busy.body(), "data: "); n == 0 || n == 10000 {
			t.Errorf("the busy stream got %d of its 10000 events after a second, want some but not yet all", n)
		}
	})
}

// TestHubShortWrites feeds a stream through a socket that takes 7 bytes at a time and
// checks that the chunked framing survives: what arrives decodes to exactly the events.
func TestHubShortWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker.New(broker.Options{Encode: sse.Encode, Buffer: 1000})
		h := newHub(Options{Writers: 1, Coalesce: -1})
		out := &fakeSink{room: 7}
		ended := hubStream(t, h, b, out, time.Hour, time.Hour)
		var want bytes.Buffer
		for i := range 50 {
			r, _ := b.Publish(context.Background(), broker.Message{Data: []byte(strings.Repeat("x", i))})
			want.WriteString("id: " + broker.FormatID(r.ID) + "\nevent: message\ndata: " + strings.Repeat("x", i) + "\n\n")
			if i%10 == 0 {
				time.Sleep(time.Second) // writer ticks retry the waiting rest
			}
		}
		for range 2000 {
			time.Sleep(time.Second)
		}
		b.Close()
		<-ended
		h.Close()
		got, err := io.ReadAll(httputil.NewChunkedReader(strings.NewReader(out.body())))
		if err != nil {
			t.Fatalf("chunked framing broken: %v in %q", err, out.body())
		}
		if string(got) != want.String() {
			t.Errorf("decoded %q\nwant %q", got, want.String())
		}
	})
}

// TestHubWriteTimeout: a client that takes nothing is dropped after the write timeout,
// and the writer is never held up by it.
func TestHubWriteTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker.New(broker.Options{Encode: sse.Encode})
		defer b.Close()
		h := newHub(Options{Writers: 1, Coalesce: -1})
		defer h.Close()
		stuck := hubStream(t, h, b, &fakeSink{room: 0}, time.Hour, 30*time.Second)
		fine := &fakeSink{room: -1}
		hubStream(t, h, b, fine, time.Hour, 30*time.Second)
		b.Publish(context.Background(), broker.Message{Data: []byte("one")})
		synctest.Wait()
		if !strings.Contains(fine.body(), "data: one") {
			t.Fatalf("the reading stream waits behind the stuck one: %q", fine.body())
		}
		time.Sleep(29 * time.Second)
		select {
		case why := <-stuck:
			t.Fatalf("ended after 29s: %v", why)
		default:
		}
		time.Sleep(2 * time.Second)
		if err := <-stuck; err != ErrWriteTimeout {
			t.Fatalf("ended: %v, want %v", err, ErrWriteTimeout)
		}
	})
}

// TestCloseCutsCoalesceShort: a writer waiting to coalesce a wake's events hears Close
// at once rather than at the end of its wait.
func TestCloseCutsCoalesceShort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker.New(broker.Options{Encode: sse.Encode})
		defer b.Close()
		h := newHub(Options{Writers: 1, Coalesce: time.Hour})
		ended := hubStream(t, h, b, &fakeSink{room: -1}, time.Hour, time.Hour)
		synctest.Wait() // the writer, woken by the new stream, waits to coalesce
		start := time.Now()
		h.Close()
		if err := <-ended; err != ErrClosed {
			t.Errorf("ended: %v, want %v", err, ErrClosed)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("Close waited %s for the coalescing writer", waited)
		}
	})
}

func TestOptionsDefaults(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	for _, tc := range []struct {
		o        Options
		writers  int
		coalesce time.Duration
	}{
		{Options{}, max(1, procs-1), DefaultCoalesce},
		{Options{Writers: 3, Coalesce: time.Millisecond}, 3, time.Millisecond},
		{Options{Coalesce: -1}, max(1, procs-1), 0},
	} {
		h := newHub(tc.o)
		h.Close()
		if len(h.shards) != tc.writers || h.coalesce != tc.coalesce {
			t.Errorf("%+v: %d writers, coalesce %s; want %d, %s", tc.o, len(h.shards), h.coalesce, tc.writers, tc.coalesce)
		}
	}
}
