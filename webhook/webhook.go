// Package webhook tells an application's backend what happens to this node's streams:
// connects, disconnects, joins and leaves, POSTed in batches of signed JSON. The sender
// sits behind broker.Options.Observe and never makes the broker wait: events queue up to
// a bound while the backend is slow or down, and what does not fit is counted and logged.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crierhq/crier/broker"
)

// Defaults for the zero values of Options.
const (
	DefaultQueue      = 10000
	DefaultBatch      = 100
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	DefaultTimeout    = 10 * time.Second
)

// Options configure a Sender. URL and Secret are required; every other zero value means
// the default named on its field.
type Options struct {
	URL    string // where batches are POSTed: an http or https URL
	Secret []byte // key of the X-Crier-Signature HMAC-SHA256
	// Queue bounds the events waiting to be sent, the batch being sent included. An event
	// that finds it full is dropped, counted and logged. Zero: DefaultQueue.
	Queue int
	// Batch is the most events one request carries. Zero: DefaultBatch.
	Batch int
	// MinBackoff and MaxBackoff bound the wait before a failed request is retried: it
	// doubles with every failure of the same batch, with jitter. Zero: DefaultMinBackoff,
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Client sends the requests. Nil: a client with a DefaultTimeout timeout.
	Client *http.Client
	// Logger hears of overflows, outages and their ends. Nil: nothing is logged.
	Logger *slog.Logger
	// Registerer gets the sender's metrics. Nil: they are kept but not exported.
	Registerer prometheus.Registerer
}

// ErrConfig is wrapped by New's errors about Options.
var ErrConfig = errors.New("webhook: bad options")

// CheckURL reports whether raw is a URL a Sender can POST to: absolute http or https.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: want an http:// or https:// URL", ErrConfig)
	}
	return nil
}

// Sender queues activity and sends it to the backend from one goroutine of its own, in
// order, at least once. Safe for concurrent use; Observe never blocks.
type Sender struct {
	opts Options
	log  *slog.Logger
	m    *metrics

	mu          sync.Mutex
	queue       []broker.Activity
	inFlight    int    // events taken off the queue and not sent yet; they count towards the bound
	closed      bool   // Close was called: Observe drops
	overflowing bool   // events were dropped since the queue was last empty
	episodeLost uint64 // how many

	kick     chan struct{} // cap 1: the queue has something
	overflow chan struct{} // cap 1: an overflow began
	drain    chan struct{} // closed by Close: send what is queued, then stop
	abort    context.Context
	cancel   context.CancelFunc // Close gave up waiting
	done     chan struct{}      // closed when the goroutine has returned
	once     sync.Once
}

// New starts a Sender.
func New(opts Options) (*Sender, error) {
	if err := CheckURL(opts.URL); err != nil {
		return nil, err
	}
	if len(opts.Secret) == 0 {
		return nil, fmt.Errorf("%w: a secret is required", ErrConfig)
	}
	opts.Queue = orDefault(opts.Queue, DefaultQueue)
	opts.Batch = orDefault(opts.Batch, DefaultBatch)
	opts.MinBackoff = orDefault(opts.MinBackoff, DefaultMinBackoff)
	opts.MaxBackoff = max(orDefault(opts.MaxBackoff, DefaultMaxBackoff), opts.MinBackoff)
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: DefaultTimeout}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sender{
		opts:     opts,
		log:      log.With("webhook", redacted(opts.URL)),
		kick:     make(chan struct{}, 1),
		overflow: make(chan struct{}, 1),
		drain:    make(chan struct{}),
		done:     make(chan struct{}),
	}
	m, err := newMetrics(opts.Registerer, s.queued)
	if err != nil {
		return nil, fmt.Errorf("webhook: metrics: %w", err)
	}
	s.m = m
	s.abort, s.cancel = context.WithCancel(context.Background())
	// Both buffers the goroutine swaps are made full size now, so that Observe, under the
	// broker's lock, never grows one (a copy of up to Queue events).
	s.queue = make([]broker.Activity, 0, opts.Queue)
	go s.run(make([]broker.Activity, 0, opts.Queue))
	s.log.Info("webhook sender started", "queue", opts.Queue, "batch", opts.Batch)
	return s, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// redacted is the URL for the log: a password or query (which may carry a key) is not
// shown.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	if u.RawQuery != "" {
		u.RawQuery = "redacted"
	}
	return u.Redacted()
}

// Observe queues a for the backend; it is a broker.Options.Observe. It never blocks:
// when the queue is full (or the Sender closed), a is dropped and counted.
func (s *Sender) Observe(a broker.Activity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.queue)+s.inFlight >= s.opts.Queue {
		s.m.dropped.Inc()
		s.episodeLost++
		if !s.overflowing {
			s.overflowing = true
			signal(s.overflow)
		}
		return
	}
	s.queue = append(s.queue, a)
	if len(s.queue) == 1 {
		signal(s.kick)
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (s *Sender) queued() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return float64(len(s.queue) + s.inFlight)
}

// Close stops taking events and sends what is queued, retrying as usual, until ctx
// ends; then it gives up, counts what was not sent as dropped, and stops. It returns
// an error naming how many events were not delivered. Close is idempotent; it returns
// once the Sender's goroutine has.
func (s *Sender) Close(ctx context.Context) error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.drain)
	})
	select {
	case <-s.done:
	case <-ctx.Done():
		s.cancel()
		<-s.done
	}
	s.cancel()
	s.mu.Lock()
	lost := len(s.queue) + s.inFlight
	s.queue, s.inFlight = nil, 0
	s.mu.Unlock()
	if lost == 0 {
		return nil
	}
	s.m.dropped.Add(float64(lost))
	s.log.Error("webhook events not delivered before shutdown", "dropped", lost)
	return fmt.Errorf("webhook: %d events not delivered before shutdown", lost)
}

// run sends the queue, a batch at a time, until Close. It takes the whole queue at once,
// swapping it with buf, so that Observe never waits for more than that swap: a copy of a
// long queue under the lock would hold up the broker.
func (s *Sender) run(buf []broker.Activity) {
	defer close(s.done)
	for {
		var ok bool
		if buf, ok = s.take(buf[:0]); !ok {
			return
		}
		for sent := 0; sent < len(buf); {
			n := min(len(buf)-sent, s.opts.Batch)
			if !s.deliver(buf[sent : sent+n]) {
				return // aborted: Close counts what was taken and not sent as lost
			}
			sent += n
			s.mu.Lock()
			s.inFlight -= n
			s.mu.Unlock()
		}
		clear(buf)
	}
}

// take returns the queue, leaving spare in its place; when the queue is empty it waits
// for a signal and returns spare empty. It reports false when the Sender should stop:
// Close was called and everything is sent, or Close gave up.
func (s *Sender) take(spare []broker.Activity) ([]broker.Activity, bool) {
	s.mu.Lock()
	if len(s.queue) > 0 {
		got := s.queue
		s.queue, s.inFlight = spare, len(got)
		s.mu.Unlock()
		return got, true
	}
	// Everything is sent: an overflow episode, if any, is over.
	lost := s.episodeLost
	ended := s.overflowing
	if ended {
		s.overflowing, s.episodeLost = false, 0
	}
	s.mu.Unlock()
	if ended {
		select {
		case <-s.overflow: // its start was not logged yet
			s.warnOverflow()
		default:
		}
		s.log.Warn("webhook queue overflow ended: the queue is empty again", "dropped", lost)
	}
	select {
	case <-s.kick:
	case <-s.overflow:
		s.warnOverflow()
	case <-s.drain:
		return spare, false
	case <-s.abort.Done():
		return spare, false
	}
	return spare, true
}

// warnOverflow logs the start of an overflow episode; its end is logged once the queue
// is empty, with the number dropped.
func (s *Sender) warnOverflow() {
	s.log.Warn("webhook queue full: dropping events until the backend catches up",
		"queue", s.opts.Queue, "metric", "crier_webhook_dropped_total")
}
