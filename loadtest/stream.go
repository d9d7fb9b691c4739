package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// openTimeout bounds connecting, the response header and the first line of a stream,
// unless the pool says otherwise.
const openTimeout = 15 * time.Second

var errClosing = errors.New("loadtest: stream closed by the tool")

// statusError is a stream refused with a status other than 200.
type statusError struct {
	status     int
	retryAfter string
}

func (e *statusError) Error() string {
	if e.retryAfter != "" {
		return fmt.Sprintf("status %d (Retry-After: %s)", e.status, e.retryAfter)
	}
	return fmt.Sprintf("status %d", e.status)
}

// pool holds the tool's streams. Its methods are called by one goroutine, the
// scenario's; each stream reads in a goroutine of its own, which the pool waits for in
// closeAll.
type pool struct {
	c       *client
	loops   []*loop       // the epoll engine's; nil: a goroutine per stream
	request []byte        // the GET /events request, the same for every stream
	bufSize int           // initial read buffer per stream
	gap     time.Duration // between the starts of two streams' opening (0: as fast as concurrency allows)
	opening time.Duration // bound on opening one stream; 0 means openTimeout

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	streams []*stream
	phase   atomic.Pointer[phase] // never nil

	open       atomic.Int64 // streams open now
	failed     atomic.Int64 // streams that could not open, 503 excluded
	refused    atomic.Int64 // streams answered 503
	dropped    atomic.Int64 // open streams that ended without the tool closing them
	heartbeats atomic.Int64 // comment lines received

	errMu    sync.Mutex
	firstErr error
}

func newPool(c *client, topic string, bufSize int, loops []*loop) *pool {
	p := &pool{c: c, loops: loops, bufSize: bufSize}
	p.request = p.makeRequest(topic, "")
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.phase.Store(newPhase())
	return p
}

// makeRequest renders the GET /events request for topic, resuming after lastID unless
// it is empty.
func (p *pool) makeRequest(topic, lastID string) []byte {
	path := "/events"
	if topic != "" {
		path += "?topic=" + url.QueryEscape(topic)
	}
	req := fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nUser-Agent: crier-loadtest\r\n", path, p.c.hostport)
	if lastID != "" {
		req = fmt.Appendf(req, "Last-Event-ID: %s\r\n", lastID)
	}
	return append(req, "\r\n"...)
}

func (p *pool) openTimeout() time.Duration {
	if p.opening > 0 {
		return p.opening
	}
	return openTimeout
}

// resumeFrom makes the streams opened from now on resume after lastID on topic.
func (p *pool) resumeFrom(topic, lastID string) { p.request = p.makeRequest(topic, lastID) }

func (p *pool) noteErr(err error) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.firstErr == nil {
		p.firstErr = err
	}
}

// err returns the first error a stream met, or nil.
func (p *pool) err() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.firstErr
}

// add opens n more streams, concurrency at a time, and returns how many opened. It
// returns when each has opened or failed, or when ctx ends.
func (p *pool) add(ctx context.Context, n, concurrency int) int {
	sem := make(chan struct{}, max(concurrency, 1))
	var batch sync.WaitGroup
	var opened atomic.Int64
	start := time.Now()
	for i := range n {
		if p.gap > 0 {
			if w := time.Until(start.Add(p.gap * time.Duration(i))); w > 0 && !sleepCtx(ctx, w) {
				break
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		s := &stream{idx: len(p.streams), pool: p, fd: -1}
		p.streams = append(p.streams, s)
		batch.Add(1)
		p.wg.Add(1)
		s.ready = func(err error) {
			switch {
			case err == nil:
				opened.Add(1)
			case errors.Is(err, errClosing):
			default:
				var se *statusError
				if errors.As(err, &se) && se.status == 503 {
					p.refused.Add(1)
				} else {
					p.failed.Add(1)
				}
				p.noteErr(err)
			}
			<-sem
			batch.Done()
		}
		if p.loops == nil {
			go s.run()
		} else if err := p.loops[s.idx%len(p.loops)].connect(p.c, s); err != nil {
			s.ready(err)
			p.wg.Done()
		}
	}
	batch.Wait()
	return int(opened.Load())
}

// closeTo closes streams, the most recently opened first, until at most n are open.
func (p *pool) closeTo(n int) {
	extra := p.open.Load() - int64(n)
	for i := len(p.streams) - 1; i >= 0 && extra > 0; i-- {
		if p.streams[i].live.Load() && p.streams[i].close() {
			extra--
		}
	}
	p.waitOpenAtMost(int64(n))
}

func (p *pool) waitOpenAtMost(n int64) {
	deadline := time.Now().Add(10 * time.Second)
	for p.open.Load() > n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// closeAll closes every stream and waits until each has ended.
func (p *pool) closeAll() {
	p.cancel()
	for _, s := range p.streams {
		s.close()
	}
	p.wg.Wait()
}

// stream is one GET /events. The goroutine that reads it (its own, or its loop's) owns
// everything but mu's fields and the atomics.
type stream struct {
	idx   int
	pool  *pool
	ready func(error) // called once, when the stream opened or failed to

	mu      sync.Mutex
	conn    net.Conn // goroutine engine
	fd      int      // epoll engine; -1 once closed
	closing bool

	live     atomic.Bool // open and being read
	readied  atomic.Bool // ready was called
	timedOut atomic.Bool

	// epoll engine
	loop      *loop
	state     int
	rd        fdReader
	openTimer *time.Timer

	br     bodyReader
	sse    sseParser
	gen    int64   // the phase last[] belongs to
	last   []int64 // per publisher: last sequence number seen
	lastID int64
}

// close asks the stream to end; it reports whether the stream was open.
func (s *stream) close() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.closing = true
	if s.conn != nil {
		s.conn.Close()
	}
	if s.loop != nil && s.fd >= 0 {
		s.loop.requestClose(s)
	}
	return s.live.Load()
}

func (s *stream) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// run is the goroutine engine: it opens the stream, calls ready, then reads the stream
// until it ends.
func (s *stream) run() {
	p := s.pool
	defer p.wg.Done()
	conn, err := p.c.dial(p.ctx)
	if err != nil {
		s.ready(err)
		return
	}
	s.mu.Lock()
	s.conn = conn
	closing := s.closing
	s.mu.Unlock()
	defer conn.Close()
	if closing {
		s.ready(errClosing)
		return
	}
	kind, err := s.open(conn)
	if err != nil {
		if s.isClosing() {
			err = errClosing
		}
		s.ready(err)
		return
	}
	s.opened()
	for err == nil {
		s.handle(kind)
		kind, err = s.sse.next()
	}
	s.ended(err)
}

// opened counts the stream as open and reports it.
func (s *stream) opened() {
	s.live.Store(true)
	s.pool.open.Add(1)
	s.readied.Store(true)
	s.ready(nil)
}

// ended counts an open stream's end: dropped unless the tool closed it.
func (s *stream) ended(err error) {
	p := s.pool
	s.live.Store(false)
	p.open.Add(-1)
	if !s.isClosing() {
		p.dropped.Add(1)
		p.noteErr(fmt.Errorf("stream ended by the server: %w", err))
		p.phase.Load().win.streamGone()
	}
}

// open sends the request and reads up to the first line of the stream: crier sends its
// retry field at once, so a stream counts as open when the server has subscribed it.
func (s *stream) open(conn net.Conn) (int, error) {
	conn.SetDeadline(time.Now().Add(s.pool.openTimeout()))
	if _, err := conn.Write(s.pool.request); err != nil {
		return 0, err
	}
	s.br.reset(conn, s.pool.bufSize, 1<<20)
	if err := s.startBody(); err != nil {
		return 0, err
	}
	kind, err := s.sse.next()
	if err != nil {
		return 0, err
	}
	conn.SetDeadline(time.Time{})
	return kind, nil
}

// startBody reads the response header and prepares to parse the event stream.
func (s *stream) startBody() error {
	h, err := readHeader(&s.br)
	if err != nil {
		return err
	}
	if h.status != 200 {
		return &statusError{status: h.status, retryAfter: h.retryAfter}
	}
	mode, n := h.bodyMode()
	if err := s.br.setBody(mode, n); err != nil {
		return err
	}
	s.sse = sseParser{r: &s.br}
	return nil
}

// handle records what the parser found into the current phase.
func (s *stream) handle(kind int) {
	switch kind {
	case kindComment:
		s.pool.heartbeats.Add(1)
		return
	case kindRetry:
		return
	}
	ph := s.pool.phase.Load()
	if id, ok := parseDigits(s.sse.id); ok {
		if id <= s.lastID {
			ph.idBack.Add(1)
		}
		s.lastID = id
	}
	switch string(s.sse.name) {
	case loadEvent:
		s.handleLoad(ph)
	case "missed":
		ph.missed.Add(1)
	case herdMissedEvent:
		ph.resumed.Add(1)
	case herdLiveEvent:
		if ph.live.Add(1) == ph.liveWant {
			ph.liveAt.Store(s.br.readAt)
		}
	case ph.presenceName:
		if n := ph.presence.Add(1); n == ph.presenceWant {
			ph.presenceAt.Store(s.br.readAt)
			close(ph.presenceDone)
		}
	}
}

func (s *stream) handleLoad(ph *phase) {
	d, ok := parseData(s.sse.out)
	if !ok || d.pub > 1<<16 {
		ph.malformed.Add(1)
		return
	}
	if d.gen != ph.gen {
		ph.stale.Add(1)
		return
	}
	if s.gen != ph.gen {
		s.gen = ph.gen
		for i := range s.last {
			s.last[i] = -1
		}
	}
	for int64(len(s.last)) <= d.pub {
		s.last = append(s.last, -1)
	}
	at := s.br.readAt
	ph.lat.record(s.idx, at-d.ts)
	ph.lastRecv.Store(at)
	if d.seq > s.last[d.pub] {
		s.last[d.pub] = d.seq
		ph.unique.Add(1)
		if s.idx < len(ph.got) {
			ph.got[s.idx].Add(1)
		}
		ph.win.delivered(d.pub, d.seq)
	} else {
		ph.dups.Add(1)
	}
}
