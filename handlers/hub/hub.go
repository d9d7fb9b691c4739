// Package hub writes HTTP/1.1 Server-Sent Events streams for any number of clients with
// a few goroutines, so that an open stream costs no goroutine, no bufio buffers and no
// timer while it waits.
//
// A handler that has subscribed describes its stream (a Stream) and hands it to
// Hub.Adopt, which writes the response head, hijacks the connection and gives it to a
// writer. From then on the hub owns the connection; when the stream ends, it closes the
// connection and calls Stream.Done with why: ErrHungUp, ErrWriteTimeout, ErrExpired,
// ErrClosed, a failed write's error, or the subscription's own error.
package hub

import (
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers/sse"
)

// Why a stream ended, as Stream.Done hears it. A stream also ends when its subscription
// does (Done then gets the subscription's error, such as broker.ErrSlow), and when a write
// fails (Done gets that error, wrapped).
var (
	// ErrHungUp: the client closed its side of the connection.
	ErrHungUp = errors.New("hub: client hung up")
	// ErrWriteTimeout: the client took none of what waited for it for Stream.WriteTimeout.
	ErrWriteTimeout = errors.New("hub: write timed out")
	// ErrExpired: Stream.Expires passed.
	ErrExpired = errors.New("hub: stream expired")
	// ErrClosed: the hub was closed with the stream still open.
	ErrClosed = errors.New("hub: closed")
)

// Stream describes a stream handed to the hub.
type Stream struct {
	// Sub is the stream's subscription. The hub abandons it when the stream ends; closing
	// it is Done's job.
	Sub *broker.Subscription
	// Opening is written right after the response head, as its first chunk (typically
	// the retry field).
	Opening []byte
	// Heartbeat is how long a stream may go without a write before it gets sse.Heartbeat.
	// It must be positive.
	Heartbeat time.Duration
	// WriteTimeout is how long bytes may wait for the client to make room before the
	// stream ends with ErrWriteTimeout.
	WriteTimeout time.Duration
	// Expires, when not zero, ends the stream with ErrExpired once it has passed.
	Expires time.Time
	// Tagged names each event's topic on the wire (see sse.AppendEvent).
	Tagged bool
	// Farewell, when set, gives what is written just before the clean end of a stream
	// that the hub ends while its client still reads (its subscription ended, it expired,
	// the hub closed): typically a retry field that spreads its client's reconnect. It is
	// called from a hub goroutine and must not block.
	Farewell func() []byte
	// Done is called once, when the stream has ended and its connection is closed, with
	// why. It is called from a hub goroutine (from Adopt when the head cannot be written)
	// and must not block.
	Done func(cause error)
}

// Options configure a Hub. The zero value takes the defaults noted, which are crier's.
type Options struct {
	// Writers is how many goroutines write streams. Zero means GOMAXPROCS less one (at
	// least one): under load the writers run flat out, and the processor left over
	// serves the network poller and the request handlers. Without it Go polls the
	// network only every 10 ms (from its monitor thread) while every processor is busy,
	// and accepts and publishes wait that long. A server that wants a writer per core
	// therefore runs with GOMAXPROCS one above its cores, as crier's main does.
	Writers int
	// Coalesce is how long a writer, woken by a first event, waits for more before it
	// writes, so that busy streams get fewer, larger writes and a presence storm's events
	// go out together; the wait also parks the writer, which lets request handlers run
	// (BENCHMARKS.md has both effects). Zero means DefaultCoalesce; a negative value
	// writes at once (under load, events still pile up while a writer works through its
	// other streams, and go out together).
	Coalesce time.Duration
}

// DefaultCoalesce is Options.Coalesce's default.
const DefaultCoalesce = 5 * time.Millisecond

// Hub writes HTTP/1.1 event streams. Adopt writes a stream's response head, hijacks the
// connection and hands it to a writer; from then on the broker wakes the stream's writer through
// Subscription.Notify, the writer sends everything queued as one chunk with one
// non-blocking write, one ticker per writer sends heartbeats, enforces write timeouts
// and token expiry, and (on Linux) one epoll instance notices clients that hang up.
//
// HTTP/2 streams (which cannot be hijacked), TLS connections and HTTP/1.0 clients are
// not for the hub: Adopt declines them, and the caller writes them itself.
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
	held    sync.WaitGroup // one per stream held
	stop    chan struct{}  // closed by Close
	workers sync.WaitGroup // writers, the watcher, reading goroutines
}

// New starts a Hub's writers.
func New(o Options) *Hub {
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
func newHub(o Options) *Hub {
	n := o.Writers
	if n <= 0 {
		n = max(1, runtime.GOMAXPROCS(0)-1)
	}
	if o.Coalesce == 0 {
		o.Coalesce = DefaultCoalesce
	}
	h := &Hub{coalesce: max(0, o.Coalesce), gosched: n >= runtime.GOMAXPROCS(0), stop: make(chan struct{})}
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
		h.held.Wait()
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

// Pace holds a new stream back until the writers can take its arrival: at most
// admitPerPass streams open during one pass of each writer. Every arrival is, with
// presence on, an event queued for every open stream; the writers, going round their
// streams, write all that a stream has queued at once, so their pace is the right one
// for arrivals too. It returns ctx's error if the client leaves meanwhile.
func (h *Hub) Pace(ctx context.Context) error {
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

// Adopt takes the stream st over: it writes the response head (200, the headers set on
// w so far and sse's), hijacks the connection and hands it to a writer, which calls
// st.Done once the stream has ended. It reports false, having written nothing, for a
// request that is not an HTTP/1.1 GET in cleartext, a connection that cannot be
// hijacked, or a closed hub; the caller then streams through w itself.
func (h *Hub) Adopt(w http.ResponseWriter, r *http.Request, st Stream) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 || r.TLS != nil || r.Method != http.MethodGet {
		return false
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return false
	}
	sse.SetHeaders(w.Header())
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	h.held.Add(1)
	// The bufio.ReadWriter is dropped with net/http's buffers in it: nothing more is read
	// from an SSE client, and everything is written straight to the socket.
	out, fd := newSink(conn)
	s := &hstream{Stream: st, out: out, fd: fd}
	// The head goes out now, from this goroutine (the stream is nobody else's yet), so the
	// client sees its stream open without waiting for a writer's round. A fresh socket
	// takes it whole; whatever it does not take waits for the writer.
	head := appendHead(make([]byte, 0, 512), w.Header(), time.Now(), st.Opening)
	n, err := out.write(head)
	if err != nil && err != errAgain {
		_ = out.close()
		h.held.Done()
		st.Done(writeFailed(err))
		return true
	}
	if n < len(head) {
		s.pending, s.held, s.since = head[n:], true, time.Now()
		st.Sub.SetBlocked(true)
	}
	h.attach(s, conn)
	return true
}

// attach hands s to a writer; conn, when the platform has no watcher for it, gets a
// goroutine that notices the client hanging up. The watcher learns of s before the
// writer does: a writer that ended s at once, closing its socket, would otherwise leave
// the watcher to register s under a descriptor number reused since by another stream,
// whose notices would then go to s (handOver lets a test end s right there).
func (h *Hub) attach(s *hstream, conn net.Conn) {
	sh := h.shards[int(h.next.Add(1))%len(h.shards)]
	s.sh = sh
	// Marked ready before the watcher knows s: until the writer has it, a notice only
	// sets its flags, and the writer sees them when it first serves s.
	s.queued.Store(true)
	watched := h.watch != nil && s.fd >= 0 && h.watch.add(s) == nil
	sh.attach(s)
	if handOver != nil {
		handOver(s)
	}
	if !watched && conn != nil {
		h.workers.Add(1)
		go func() {
			defer h.workers.Done()
			awaitHangup(conn, s)
		}()
	}
	s.Sub.Notify(func() { sh.enqueue(s) })
}

// handOver, when set (by tests only), runs right after a stream is handed to its writer.
var handOver func(*hstream)

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
