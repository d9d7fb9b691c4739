package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// phase is one measurement. Streams record into the current phase (pool.phase) and
// publishers publish for it; its generation number, carried in every payload, keeps
// late events of an earlier phase out of it. Safe for concurrent use.
type phase struct {
	gen     int64
	streams int64 // streams open when publishing started: each should get every event

	lat    histogram // publish-to-receive
	pubLat histogram // POST /publish round trip

	unique    atomic.Int64 // load events received with a sequence number above the last seen
	dups      atomic.Int64 // load events at or below the last seen: duplicated or reordered
	idBack    atomic.Int64 // events whose id is not above the stream's previous one
	stale     atomic.Int64 // load events of another phase
	malformed atomic.Int64 // load events whose data could not be read
	published atomic.Int64 // publishes answered 200
	refused   atomic.Int64 // publishes answered 503: not accepted, so not owed to any stream
	pubErrors atomic.Int64 // publishes that failed or were answered neither 200 nor 503
	offered   atomic.Int64 // open loop: publishes the schedule called for
	unsent    atomic.Int64 // open loop: of those, due while the publisher still waited for an answer
	pubStart  atomic.Int64 // Unix nanoseconds of the first publish
	pubEnd    atomic.Int64 // and when the publishers stopped
	lastRecv  atomic.Int64 // Unix nanoseconds of the latest load event received

	got []atomic.Int64 // unique load events per stream open when publishing started, by pool index

	// Presence counting: presenceDone is closed when presenceWant presenceName events
	// (new_user, or a room's join) arrived.
	presenceName string
	presence     atomic.Int64
	presenceWant int64
	presenceDone chan struct{}
	presenceAt   atomic.Int64

	// Arrival herds: events received from history, missed notices, and the live event.
	resumed, missed, live atomic.Int64
	liveWant              int64
	liveAt                atomic.Int64 // when the liveWant-th live event arrived

	win  *window // nil unless publishers are flow-controlled
	open bool    // open loop: publishers keep to the rate's schedule whatever the answers

	errOnce  sync.Once
	firstErr string // first publish error, for the log
}

var phaseGen atomic.Int64

func newPhase() *phase {
	return &phase{gen: phaseGen.Add(1), presenceName: "new_user", presenceDone: make(chan struct{})}
}

// pubError keeps the first publish error for the log.
func (ph *phase) pubError(msg string) {
	ph.pubErrors.Add(1)
	ph.errOnce.Do(func() { ph.firstErr = msg })
}

// expected is the number of deliveries a lossless run makes.
func (ph *phase) expected() int64 { return ph.published.Load() * ph.streams }

// track counts deliveries per stream of p from now on, for drain and owed.
func (ph *phase) track(p *pool) {
	ph.streams = p.open.Load()
	ph.got = make([]atomic.Int64, len(p.streams))
}

// owed is the number of deliveries that the streams of p still open are yet to get:
// what the server still owes, whereas the events of a stream it ended are lost.
func (ph *phase) owed(p *pool) int64 {
	want := ph.published.Load()
	var owed int64
	for i := range ph.got {
		if s := p.streams[i]; s.live.Load() {
			owed += max(0, want-ph.got[i].Load())
		}
	}
	return owed
}

// drain waits, after publishing stopped, until every stream still open has every
// event, or for timeout. It does not stop at a pause: a server behind a slow reader
// holds megabytes per stream in its sockets, and TCP may leave one idle for seconds
// (retransmission after a drop, a zero-window probe) while it still owes the rest.
func (ph *phase) drain(ctx context.Context, p *pool, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for ph.owed(p) > 0 && time.Now().Before(deadline) {
		if !sleepCtx(ctx, 10*time.Millisecond) {
			return
		}
	}
}

// window flow-controls unthrottled publishers: publisher p may publish sequence number
// s only once s-size has reached every open stream. It keeps the server saturated
// without letting any stream fall further behind than size events per publisher, which
// stays under crier's slow-subscriber limit (-buffer, 256) and bounds the latency that
// queueing adds.
type window struct {
	size  int64
	open  *atomic.Int64    // streams open now: the number of deliveries an event needs
	rings [][]atomic.Int32 // per publisher: deliveries per sequence number, mod ringLen
	wake  []chan struct{}  // per publisher
	slow  atomic.Int64     // waits that timed out (a stream stalled)
}

const ringLen = 4096

func newWindow(size, publishers int, open *atomic.Int64) *window {
	w := &window{size: int64(min(max(size, 1), ringLen/2)), open: open}
	for range publishers {
		w.rings = append(w.rings, make([]atomic.Int32, ringLen))
		w.wake = append(w.wake, make(chan struct{}, 1))
	}
	return w
}

// delivered counts one delivery of (pub, seq) and wakes the publisher when it was the
// last one needed.
func (w *window) delivered(pub, seq int64) {
	if w == nil || pub >= int64(len(w.rings)) {
		return
	}
	if int64(w.rings[pub][seq%ringLen].Add(1)) >= w.open.Load() {
		select {
		case w.wake[pub] <- struct{}{}:
		default:
		}
	}
}

// streamGone wakes every publisher: fewer deliveries are needed now.
func (w *window) streamGone() {
	if w == nil {
		return
	}
	for _, c := range w.wake {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// wait blocks publisher pub until it may publish seq. A wait longer than a second (a
// stalled stream) gives up and is counted.
func (w *window) wait(ctx context.Context, pub, seq int64, t *time.Timer) {
	if seq < w.size {
		return
	}
	slot := &w.rings[pub][(seq-w.size)%ringLen]
	t.Reset(time.Second)
	defer t.Stop()
	for int64(slot.Load()) < w.open.Load() {
		select {
		case <-w.wake[pub]:
		case <-ctx.Done():
			return
		case <-t.C:
			w.slow.Add(1)
			slot.Store(0)
			return
		}
	}
	slot.Store(0)
}

// sleepCtx sleeps for d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
