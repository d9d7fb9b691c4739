package hub

import (
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers/sse"
)

// hstream is one stream held by a Hub. The atomics are set by the broker and the
// watcher; everything else belongs to its shard's writer goroutine.
type hstream struct {
	Stream
	sh  *shard
	out sink
	fd  int // the socket, for the watcher; -1 when there is none
	gen uint32

	queued   atomic.Bool // in its shard's ready list
	hungUp   atomic.Bool // the client closed its side, or the connection failed
	writable atomic.Bool // the socket took a short write and has room again

	idx     int    // position in sh.streams
	pending []byte // bytes other than events not yet written: the head's rest, a heartbeat's
	// The chunk under way frames the chunkN events at the front of the subscription's
	// queue (chunkSize bytes of them); chunkOff of its bytes are written. The events stay
	// in the queue until the chunk is written, so the stream holds no copy of them.
	chunkN, chunkSize, chunkOff int
	blocked                     bool      // the last write was short: wait until writable
	held                        bool      // the subscription was told so (SetBlocked)
	since                       time.Time // when the stream last made progress, or began to wait
	lastWrite                   time.Time
	ended                       bool
}

// shard is one writer goroutine and the streams it owns.
type shard struct {
	h    *Hub
	wake chan struct{} // cap 1: something is ready

	mu       sync.Mutex
	ready    []*hstream    // woken streams, each once (hstream.queued)
	incoming []*hstream    // attached, not yet in streams
	arrivals int           // streams admitted since the pass began (Hub.pace)
	passDone chan struct{} // closed when the pass ends; made by a waiting arrival

	// The writer's own.
	streams  []*hstream
	work     []*hstream
	finished []ending // ended streams whose handlers are yet to hear it
	batch    []*broker.Event
	buf      []byte
	tick     time.Duration
	now      time.Time
}

const (
	maxTick = time.Second           // heartbeat, expiry and write-timeout resolution
	minTick = 10 * time.Millisecond // for very short heartbeats (tests)
	// yieldEvery streams served, a writer lets the process's other threads run, and
	// other goroutines too when the writers hold every processor, so that request
	// handlers (publishes, new streams) and the broker's dispatcher are not kept waiting
	// behind a long pass: on a busy core, the kernel would otherwise leave a woken thread
	// waiting for up to 10 ms.
	yieldEvery = 32
	// finishPerRound bounds the ended streams reported per round. Each report detaches a
	// subscription, and with presence on that is a user_left event for every stream: a
	// thousand clients leaving at once must not queue a thousand events for the others
	// before the writer gets round to them (they would be cut off as slow).
	finishPerRound = 16
	// admitPerPass bounds the streams that open during one pass of a writer (see
	// Hub.pace): with presence on, each is an event for every stream, and a crowd
	// arriving faster than the writers go round would otherwise overflow every queue.
	admitPerPass = 64
	// writeSlice bounds what one write sends, and so the bytes a writer copies for it:
	// events are written from their shared wire bytes a slice at a time, however large
	// a replay or an event, and a stream keeps none of them but as pointers in its queue.
	writeSlice = 64 << 10
	// chunkEvents bounds the events one chunk frames.
	chunkEvents = 256
	// visitBytes bounds what a writer writes to one stream before it serves the others
	// (the stream goes back on the ready list): a queue refilled as fast as it is written,
	// or a long replay, must not keep the rest waiting.
	visitBytes = 4 * writeSlice
)

// ending is a stream that ended and why, for its Done.
type ending struct {
	s     *hstream
	cause error
}

// lastChunk ends a chunked response.
var lastChunk = []byte("0\r\n\r\n")

var heartbeatChunk = appendChunkBytes(nil, sse.Heartbeat)

// enqueue marks s ready for its writer. It never blocks: the broker calls it.
func (sh *shard) enqueue(s *hstream) {
	if s.queued.Swap(true) {
		return
	}
	sh.mu.Lock()
	sh.ready = append(sh.ready, s)
	sh.mu.Unlock()
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

func (sh *shard) attach(s *hstream) {
	s.queued.Store(true) // its head is waiting
	sh.mu.Lock()
	sh.incoming = append(sh.incoming, s)
	sh.ready = append(sh.ready, s)
	sh.mu.Unlock()
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

func (sh *shard) run(stop <-chan struct{}) {
	ticker := time.NewTicker(sh.tick)
	defer ticker.Stop()
	coalesce := time.NewTimer(time.Hour) // stopped: armed for each wait, which stop cuts short
	coalesce.Stop()
	for {
		select {
		case <-stop:
			sh.endAll()
			return
		case now := <-ticker.C:
			sh.now = now
			sh.scan()
			sh.report(finishPerRound)
		case <-sh.wake:
			if sh.h.coalesce > 0 {
				coalesce.Reset(sh.h.coalesce)
				select {
				case <-stop:
					sh.endAll()
					return
				case <-coalesce.C:
				}
			}
			sh.now = time.Now()
		}
		sh.drain(ticker, stop)
	}
}

// take begins a pass: it moves attached streams and the ready list into the writer's
// hands.
func (sh *shard) take() {
	sh.mu.Lock()
	in := sh.incoming
	sh.incoming = nil
	sh.work, sh.ready = sh.ready, sh.work[:0]
	sh.arrivals = 0
	sh.mu.Unlock()
	for _, s := range in {
		s.idx = len(sh.streams)
		s.since, s.lastWrite = sh.now, sh.now
		sh.streams = append(sh.streams, s)
		if t := min(maxTick, max(minTick, s.Heartbeat/4)); t < sh.tick {
			sh.tick = t
		}
	}
}

// drain serves ready streams, and reports ended ones, until none is left or stop is
// closed. Under load that can be a long time, so between rounds it keeps the ticker's
// time itself: heartbeats, expiry and write timeouts must not wait until the writer
// runs out of work.
func (sh *shard) drain(ticker *time.Ticker, stop <-chan struct{}) {
	served, tick := 0, sh.tick
	for {
		sh.take()
		if sh.tick != tick { // a new stream's heartbeat wants a finer tick
			tick = sh.tick
			ticker.Reset(tick)
		}
		if len(sh.work) == 0 && len(sh.finished) == 0 {
			sh.endPass()
			return
		}
		for i, s := range sh.work {
			sh.work[i] = nil
			s.queued.Store(false)
			sh.pump(s)
			if served++; served%yieldEvery == 0 {
				if sh.h.gosched {
					runtime.Gosched()
				}
				yieldThread()
				sh.now = time.Now()
			}
		}
		sh.work = sh.work[:0]
		sh.report(finishPerRound)
		sh.endPass()
		select {
		case <-stop:
			return
		case now := <-ticker.C:
			sh.now = now
			sh.scan()
		default:
		}
	}
}

// endPass lets the arrivals waiting for this pass in.
func (sh *shard) endPass() {
	sh.mu.Lock()
	if sh.passDone != nil {
		close(sh.passDone)
		sh.passDone = nil
	}
	sh.mu.Unlock()
}

// admit counts one arrival against this pass's budget, or returns a channel that is
// closed when the pass ends.
func (sh *shard) admit() <-chan struct{} {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.arrivals < admitPerPass {
		sh.arrivals++
		return nil
	}
	if sh.passDone == nil {
		sh.passDone = make(chan struct{})
	}
	select {
	case sh.wake <- struct{}{}: // an idle writer must start a pass to end it
	default:
	}
	return sh.passDone
}

// report tells the handlers of up to n ended streams (all, for n < 0).
func (sh *shard) report(n int) {
	if n < 0 || n > len(sh.finished) {
		n = len(sh.finished)
	}
	for _, e := range sh.finished[:n] {
		e.s.Done(e.cause)
		sh.h.held.Done()
	}
	rest := copy(sh.finished, sh.finished[n:])
	clear(sh.finished[rest:])
	sh.finished = sh.finished[:rest]
}

// pump writes whatever s has waiting: the rest of an earlier write, then its events, a
// chunk at a time; it ends s when its client left or its subscription ended.
func (sh *shard) pump(s *hstream) {
	if s.ended {
		return
	}
	if s.hungUp.Load() {
		sh.end(s, ErrHungUp)
		return
	}
	if !sh.flush(s) {
		if err := s.Sub.Err(); err != nil && !s.ended {
			sh.end(s, err)
		}
		return
	}
	for visit := 0; ; {
		if visit >= visitBytes {
			sh.enqueue(s) // the rest in the next round, after the others' turn
			return
		}
		batch, err := s.Sub.Peek(sh.batch[:0], chunkEvents)
		if len(batch) == 0 {
			sh.batch = batch
			if err != nil {
				sh.end(s, err) // once ended, Peek reports it only when nothing is left
			}
			return
		}
		s.chunkN, s.chunkSize = frame(batch, s.Tagged)
		s.chunkOff = 0
		visit += s.chunkSize
		done := sh.writeChunk(s, batch[:s.chunkN])
		clear(batch)
		sh.batch = batch[:0]
		if !done {
			return // the rest waits for room; the broker cuts s off should it fall behind
		}
	}
}

// frame picks the events of the next chunk from the front of batch: as many as fit in
// writeSlice bytes, and at least one.
func frame(batch []*broker.Event, tagged bool) (n, size int) {
	for _, ev := range batch {
		w := sse.EventLen(ev, tagged)
		if n > 0 && size+w > writeSlice {
			break
		}
		n, size = n+1, size+w
	}
	return n, size
}

// writeChunk writes the rest of the chunk under way, whose events are evs, a slice at a
// time; it reports whether all of it went out, and then removes the events from the
// subscription's queue.
func (sh *shard) writeChunk(s *hstream, evs []*broker.Event) bool {
	// An empty chunk would end the response: events without wire bytes are skipped.
	if total := chunkLen(s.chunkSize); s.chunkSize > 0 {
		for s.chunkOff < total {
			sh.buf = appendSlice(sh.buf[:0], evs, s.Tagged, s.chunkSize, s.chunkOff)
			n, all := sh.put(s, sh.buf)
			s.chunkOff += n
			if !all {
				return false
			}
		}
	}
	s.Sub.Consume(s.chunkN)
	s.chunkN, s.chunkSize, s.chunkOff = 0, 0, 0
	return true
}

// flush writes what s had not written yet (the rest of its pending bytes, then of the
// chunk under way); it reports whether nothing is left.
func (sh *shard) flush(s *hstream) bool {
	if !s.waiting() {
		return true
	}
	if s.blocked && !s.writable.Swap(false) {
		return false
	}
	if len(s.pending) > 0 {
		n, all := sh.put(s, s.pending)
		if !all {
			s.pending = s.pending[n:] // no copy: pending is only ever a head or a heartbeat
			return false
		}
		s.pending = nil // an idle stream keeps no buffer
	}
	if s.chunkN == 0 {
		return true
	}
	batch, _ := s.Sub.Peek(sh.batch[:0], s.chunkN)
	done := len(batch) == s.chunkN && sh.writeChunk(s, batch) // fewer: the subscription ended
	clear(batch)
	sh.batch = batch[:0]
	return done
}

// waiting reports whether s has bytes accepted for its client and not yet written.
func (s *hstream) waiting() bool { return len(s.pending) > 0 || s.chunkN > 0 }

// put writes b to s's connection and returns how much went out and whether all of it
// did. A short write marks s blocked, and tells its subscription, which is cut off once
// -buffer events wait while it stays so; a write that takes everything unblocks it. A
// failed write ends s. Progress, however small, restarts the write timeout.
func (sh *shard) put(s *hstream, b []byte) (int, bool) {
	n, err := s.out.write(b)
	if n > 0 {
		s.since = sh.now
	}
	if n == len(b) {
		s.lastWrite, s.blocked = sh.now, false
		if s.held {
			s.held = false
			s.Sub.SetBlocked(false)
		}
		return n, true
	}
	if err != nil && err != errAgain {
		s.hungUp.Store(true)
		sh.end(s, writeFailed(err))
		return n, false
	}
	if !s.blocked {
		s.blocked, s.since = true, sh.now
	}
	if !s.held {
		s.held = true
		s.Sub.SetBlocked(true)
	}
	return n, false
}

// send writes b, a few bytes that are not events (a heartbeat), to a stream that has
// nothing else waiting; what the socket does not take is kept.
func (sh *shard) send(s *hstream, b []byte) {
	if n, all := sh.put(s, b); !all && !s.ended {
		s.pending = b[n:len(b):len(b)] // shared: an append must not write into it
	}
}

// scan runs on every tick: heartbeats for idle streams, token expiry, write timeouts,
// and another try for streams waiting for room where no watcher says when there is.
func (sh *shard) scan() {
	now := sh.now
	for i := 0; i < len(sh.streams); {
		s := sh.streams[i]
		sh.check(s, now)
		if i < len(sh.streams) && sh.streams[i] == s {
			i++
		} // else s ended, and the last stream moved into its place
	}
}

func (sh *shard) check(s *hstream, now time.Time) {
	switch {
	case s.hungUp.Load():
		sh.end(s, ErrHungUp)
	case !s.Expires.IsZero() && !now.Before(s.Expires):
		sh.end(s, ErrExpired)
	case s.waiting():
		if now.Sub(s.since) >= s.WriteTimeout {
			sh.end(s, ErrWriteTimeout)
		} else if sh.h.watch == nil || s.fd < 0 {
			s.writable.Store(true)
			sh.pump(s)
		}
	case now.Sub(s.lastWrite) >= s.Heartbeat:
		sh.send(s, heartbeatChunk)
	}
}

// end closes s's connection, after the last chunk unless the client is gone or takes
// nothing; its Done hears why at the end of the round.
func (sh *shard) end(s *hstream, cause error) {
	if s.ended {
		return
	}
	s.ended = true
	if !s.hungUp.Load() && cause != ErrWriteTimeout && s.chunkOff == 0 {
		// One try, no waiting: a client that reads gets its farewell and a clean end of
		// the response. (In the middle of a chunk it cannot: the chunk's events may be
		// gone.)
		b := s.pending
		if s.Farewell != nil {
			b = appendChunkBytes(b, s.Farewell())
		}
		_, _ = s.out.write(append(b, lastChunk...))
	}
	s.pending = nil
	s.chunkN, s.chunkSize, s.chunkOff = 0, 0, 0
	s.Sub.Abandon() // its Done hears of the end at the end of the round, or later
	if sh.h.watch != nil && s.fd >= 0 {
		sh.h.watch.remove(s)
	}
	_ = s.out.close()
	last := len(sh.streams) - 1
	if s.idx <= last && sh.streams[s.idx] == s {
		sh.streams[s.idx] = sh.streams[last]
		sh.streams[s.idx].idx = s.idx
		sh.streams[last] = nil
		sh.streams = sh.streams[:last]
	}
	sh.finished = append(sh.finished, ending{s, cause})
}

// endAll ends every stream as the hub stops.
func (sh *shard) endAll() {
	sh.take()
	for len(sh.streams) > 0 {
		sh.end(sh.streams[len(sh.streams)-1], ErrClosed)
	}
	sh.report(-1)
	sh.work = sh.work[:0]
}

// chunkLen is the length of an HTTP/1.1 chunk of size bytes: size in hex, CRLF, the
// bytes, CRLF.
func chunkLen(size int) int {
	n := 1
	for v := size >> 4; v > 0; v >>= 4 {
		n++
	}
	return n + 2 + size + 2
}

// appendSlice appends to b the bytes from off on, at most writeSlice of them, of one
// chunk framing evs (size bytes in all, as sse.AppendEvent writes them).
func appendSlice(b []byte, evs []*broker.Event, tagged bool, size, off int) []byte {
	var head [20]byte
	var tag [1040]byte // a topic line: 256 characters of up to 4 bytes
	hdr := append(strconv.AppendUint(head[:0], uint64(size), 16), '\r', '\n')
	start, pos := len(b), 0
	// The segments: the chunk's size line, then each event's topic line (on a tagged
	// stream) and shared wire bytes, then the closing CRLF.
	for i := -1; i <= 2*len(evs); i++ {
		var seg []byte
		switch {
		case i < 0:
			seg = hdr
		case i == 2*len(evs):
			seg = crlf
		case i%2 == 0:
			seg = sse.AppendTag(tag[:0], evs[i/2], tagged)
		default:
			seg = evs[i/2].Wire()
		}
		end := pos + len(seg)
		if end > off {
			seg = seg[max(off-pos, 0):]
			if room := writeSlice - (len(b) - start); len(seg) > room {
				seg = seg[:room]
			}
			if b = append(b, seg...); len(b)-start == writeSlice {
				break
			}
		}
		pos = end
	}
	return b
}

var crlf = []byte("\r\n")

func appendChunkBytes(b, data []byte) []byte {
	b = strconv.AppendUint(b, uint64(len(data)), 16)
	b = append(b, "\r\n"...)
	b = append(b, data...)
	return append(b, "\r\n"...)
}

// appendHead appends a stream's response head and its opening chunk: status line, the
// headers set so far (the stream's own and CORS'), the date, and chunked framing.
func appendHead(b []byte, h http.Header, now time.Time, opening []byte) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\n"...)
	for k, vs := range h {
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			for i := 0; i < len(v); i++ {
				// net/http's rule: a line break in a value must not start a header of its own.
				if c := v[i]; c == '\r' || c == '\n' || c == 0 {
					b = append(b, ' ')
				} else {
					b = append(b, c)
				}
			}
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "Date: "...)
	b = now.UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"...)
	return appendChunkBytes(b, opening)
}
