package hub

import (
	"bytes"
	"context"
	"io"
	"net/http/httputil"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers/sse"
)

// measuredSink is a fakeSink that remembers the largest write it was offered.
type measuredSink struct {
	fakeSink
	mu      sync.Mutex
	largest int
}

func (m *measuredSink) write(b []byte) (int, error) {
	m.mu.Lock()
	m.largest = max(m.largest, len(b))
	m.mu.Unlock()
	return m.fakeSink.write(b)
}

// TestSlowReaderIsNotTimedOut: a client that reads slowly but steadily makes progress
// with every write, and the write timeout counts from the last progress, not from the
// first short write: it is not cut off at the timeout while it reads.
func TestSlowReaderIsNotTimedOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker.New(broker.Options{Encode: sse.Encode})
		defer b.Close()
		h := newHub(Options{Writers: 1})
		defer h.Close()
		out := &fakeSink{room: 100} // 100 bytes a write, one write a tick (1s)
		ended := hubStream(t, h, b, out, time.Hour, 30*time.Second)
		data := strings.Repeat("x", 10000)
		b.Publish(context.Background(), broker.Message{Data: []byte(data)})
		time.Sleep(60 * time.Second)
		select {
		case err := <-ended:
			t.Fatalf("a client taking 100 bytes a second ended after 60s: %v", err)
		default:
		}
		time.Sleep(60 * time.Second)
		synctest.Wait()
		if !strings.Contains(out.body(), data+"\n\n") {
			t.Fatalf("after 120s the event had not arrived whole (%d bytes)", len(out.body()))
		}
		select {
		case err := <-ended:
			t.Fatalf("the stream ended: %v", err)
		default:
		}
	})
}

// TestWritesAreBoundedSlices: a large replay and large events are written a slice at a
// time straight from the shared events, however little the socket takes: no write is
// offered more than writeSlice bytes (the writer copies no more for it), the stream keeps
// no bytes of its own, and the chunked framing survives.
func TestWritesAreBoundedSlices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker.New(broker.Options{Encode: sse.Encode, History: 100})
		big := strings.Repeat("y", 300<<10)
		var (
			want  bytes.Buffer
			after string
		)
		for i, data := range []string{big, big, big, "small"} {
			r, _ := b.Publish(context.Background(), broker.Message{Data: []byte(data)})
			if i == 0 {
				after = broker.FormatID(r.ID) // the stream resumes after the first
				continue
			}
			want.WriteString("id: " + broker.FormatID(r.ID) + "\nevent: message\ndata: " + data + "\n\n")
		}
		sub, err := b.Subscribe(broker.Request{Resume: true, LastEventID: after})
		if err != nil {
			t.Fatal(err)
		}
		h := newHub(Options{Writers: 1})
		out := &measuredSink{fakeSink: fakeSink{room: 4096}}
		ended := make(chan error, 1)
		s := &hstream{out: out, fd: -1, Stream: Stream{Sub: sub, Heartbeat: time.Hour, WriteTimeout: time.Hour,
			Done: func(err error) { sub.Close(); ended <- err }}}
		h.held.Add(1)
		h.attach(s, nil)
		for range 400 {
			time.Sleep(time.Second) // a tick: another write of what the socket takes
			synctest.Wait()
			if strings.Contains(out.body(), "data: small") {
				break
			}
		}
		b.Close()
		<-ended
		h.Close()
		if out.largest > writeSlice {
			t.Errorf("a write was offered %d bytes, more than the %d-byte slice", out.largest, writeSlice)
		}
		got, err := io.ReadAll(httputil.NewChunkedReader(strings.NewReader(out.body())))
		if err != nil {
			t.Fatalf("chunked framing broken: %v", err)
		}
		if string(got) != want.String() {
			t.Errorf("decoded %d bytes, want %d", len(got), want.Len())
		}
	})
}
