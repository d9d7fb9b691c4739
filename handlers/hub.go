package handlers

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crierhq/crier/broker"
)

// HubOptions configure a Hub. The zero value is ready for use.
type HubOptions struct {
	// Writers is how many goroutines write streams; zero means GOMAXPROCS.
	Writers int
	// Coalesce is how long a writer, woken by a first event, waits for more before it
	// writes, so that busy streams get fewer, larger writes. Zero writes at once (under
	// load, events still pile up while a writer works through its other streams, and go
	// out together).
	Coalesce time.Duration
}

// Hub writes HTTP/1.1 event streams for any number of clients with a few goroutines, so
// that an open stream costs no goroutine, no bufio buffers and no timer while it waits.
// The events handler writes a stream's response head itself, hijacks the connection and
// hands it over; from then on the broker wakes the stream's writer through
// Subscription.Notify, the writer sends everything queued as one chunk with one
// non-blocking write, one ticker per writer sends heartbeats, enforces write timeouts
// and token expiry, and (on Linux) one epoll instance notices clients that hang up.
//
// HTTP/2 streams (which cannot be hijacked), TLS connections and HTTP/1.0 clients stay
// on the plain path: a handler goroutine per stream, writing through the ResponseWriter.
//
// A Hub is safe for concurrent use. Shutdown or Close stops it; a Hub serves the handlers
// of one server.
type Hub struct {
	coalesce time.Duration
	gosched  bool // the writers hold every processor: they must let other goroutines run
	shards   []*shard
	watch    *watcher // nil when the platform has none: each stream gets a reading goroutine
	next     atomic.Uint32

	mu      sync.RWMutex // held for reading while a stream is attached, so Close waits
	closed  bool
	stopped bool
	streams sync.WaitGroup // one per stream held
	stop    chan struct{}  // closed by Close
	workers sync.WaitGroup // writers, the watcher, reading goroutines
}

// NewHub starts a Hub's writers.
func NewHub(o HubOptions) *Hub {
	h := newHub(o)
	if w, err := newWatcher(h); err == nil {
		h.watch = w
		h.workers.Add(1)
		go func(stop <-chan struct{}) {
			defer h.workers.Done()
			w.run(stop)
		}(h.stop)
	}
	return h
}

// newHub starts the writers but no watcher; tests drive hang-ups themselves.
func newHub(o HubOptions) *Hub {
	n := o.Writers
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	h := &Hub{coalesce: o.Coalesce, gosched: n >= runtime.GOMAXPROCS(0), stop: make(chan struct{})}
	for range n {
		sh := &shard{h: h, wake: make(chan struct{}, 1), tick: maxTick}
		h.shards = append(h.shards, sh)
		h.workers.Add(1)
		go func(stop <-chan struct{}) {
			defer h.workers.Done()
			sh.run(stop)
		}(h.stop)
	}
	return h
}

// Shutdown refuses new streams and waits until every stream the hub holds has ended
// (closing the broker ends them all, each with a clean end of its response), or until
// ctx is done; then it closes whatever is left and stops, like Close.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	ended := make(chan struct{})
	go func() {
		h.streams.Wait()
		close(ended)
	}()
	var err error
	select {
	case <-ended:
	case <-ctx.Done():
		err = ctx.Err()
	}
	h.Close()
	<-ended // Close ended the rest
	return err
}

// Close ends every stream at once (their subscriptions closed, their connections too)
// and stops the hub's goroutines. Close is idempotent.
func (h *Hub) Close() {
	h.mu.Lock()
	first := !h.stopped
	h.closed, h.stopped = true, true
	h.mu.Unlock()
	if first {
		close(h.stop)
	}
	h.workers.Wait()
	if h.watch != nil {
		h.watch.close()
	}
}

// pace holds a new stream back until the writers can take its arrival: at most
// admitPerPass streams open during one pass of each writer. Every arrival is, with
// presence on, an event queued for every open stream; the writers, going round their
// streams, write all that a stream has queued at once, so their pace is the right one
// for arrivals too. It returns ctx's error if the client leaves meanwhile.
func (h *Hub) pace(ctx context.Context) error {
	for _, sh := range h.shards {
		for {
			wait := sh.admit()
			if wait == nil {
				break
			}
			select {
			case <-wait:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// serve takes sub's stream over: it writes the response head, hijacks the connection
// and hands it to a writer, which calls done once the stream has ended. It reports false,
// having written nothing, when it cannot; the caller then streams through w itself.
func (h *Hub) serve(w http.ResponseWriter, r *http.Request, st *streamer, sub *broker.Subscription,
	expires time.Time, done func(closeReason)) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 || r.TLS != nil || r.Method != http.MethodGet {
		return false
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return false
	}
	setStreamHeaders(w.Header())
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	h.streams.Add(1)
	// The bufio.ReadWriter is dropped with net/http's buffers in it: nothing more is read
	// from an SSE client, and everything is written straight to the socket.
	out, fd := newSink(conn)
	s := &hstream{sub: sub, out: out, fd: fd, done: done,
		heartbeat: st.heartbeat, writeTimeout: st.writeTimeout, expires: expires}
	// The head goes out now, from this goroutine (the stream is nobody else's yet), so the
	// client sees its stream open without waiting for a writer's round. A fresh socket
	// takes it whole; whatever it does not take waits for the writer.
	head := appendHead(make([]byte, 0, 512), w.Header(), time.Now(), st.opening)
	n, err := out.write(head)
	if err != nil && err != errAgain {
		_ = out.close()
		h.streams.Done()
		done(closedWriteFailed)
		return true
	}
	if n < len(head) {
		s.pending = head[n:]
	}
	h.attach(s, conn)
	return true
}

// attach hands s to a writer; conn, when the platform has no watcher for it, gets a
// goroutine that notices the client hanging up.
func (h *Hub) attach(s *hstream, conn net.Conn) {
	sh := h.shards[int(h.next.Add(1))%len(h.shards)]
	s.sh = sh
	sh.attach(s)
	if h.watch == nil || s.fd < 0 || h.watch.add(s) != nil {
		if conn != nil {
			h.workers.Add(1)
			go func() {
				defer h.workers.Done()
				awaitHangup(conn, s)
			}()
		}
	}
	s.sub.Notify(func() { sh.enqueue(s) })
}

// awaitHangup reads conn until it fails: the client left, or the stream closed it.
func awaitHangup(conn net.Conn, s *hstream) {
	var b [64]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			s.hungUp.Store(true)
			s.sh.enqueue(s)
			return
		}
	}
}

// sink is a stream's connection as a writer sees it.
type sink interface {
	// write writes what the connection takes now, without waiting; a short count comes
	// with errAgain.
	write(b []byte) (int, error)
	close() error
}

var errAgain = errors.New("connection not ready for writing")

// connSink writes any net.Conn, waiting at most a moment for room. It serves where a
// raw descriptor is not available.
type connSink struct{ c net.Conn }

func (s connSink) write(b []byte) (int, error) {
	_ = s.c.SetWriteDeadline(time.Now().Add(time.Millisecond))
	n, err := s.c.Write(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, errAgain
	}
	return n, err
}

func (s connSink) close() error { return s.c.Close() }
