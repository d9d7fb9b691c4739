package broker

import (
	"sync"
	"time"
)

// Subscription is one open stream's view of the broker: a bounded queue of shared events.
// The stream drains it with Take whenever Ready fires. Safe for concurrent use.
type Subscription struct {
	b       *Broker
	id      string
	user    string   // Request.User
	rooms   []string // the rooms it is in; the broker's, under its lock
	topics  []string
	limit   int
	started time.Time

	mu      sync.Mutex
	backlog []*Event // replayed history, delivered before the live queue; not bounded by limit
	queue   []*Event // live events, at most limit once the consumer has begun (taking)
	taking  bool     // Take has been called: the stream is being written
	err     error    // why the subscription ended; nil while it is open
	ready   chan struct{}
	notify  func() // set by Notify; replaces signalling ready
	sent    uint64 // events handed out by Take
	gone    bool   // the consumer stopped taking (Abandon): events are dropped, not queued
	skip    uint64 // live events up to this id were replayed already (resume through a Bus)
	// gate, through a Bus, holds back presence events until the subscription's own
	// new_user (or, should that never come, an event with an id past gateEnd): those
	// before it in the log are about a cluster this stream was not part of yet.
	gate    bool
	gateEnd uint64
}

func newSubscription(b *Broker, id string, topics []string, limit int, now time.Time) *Subscription {
	return &Subscription{b: b, id: id, topics: topics, limit: limit, started: now, ready: make(chan struct{}, 1)}
}

// ID is the subscriber id announced in presence events.
func (s *Subscription) ID() string { return s.id }

// User returns the stream's user: Request.User, or the subscriber id when that was empty
// (an anonymous stream is a user of its own).
func (s *Subscription) User() string {
	if s.user == "" {
		return s.id
	}
	return s.user
}

// Topics returns the topics the subscription follows besides broadcasts.
func (s *Subscription) Topics() []string { return s.topics }

// Ready fires when events are waiting or the subscription has ended; then call Take.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Notify makes the subscription call f, instead of signalling Ready, whenever events
// arrive or it ends; once now if some are waiting already. It lets one goroutine serve
// many subscriptions without a select over each one's channel. f runs while the broker's
// dispatcher holds the subscription's lock: it must return at once, and must not call the
// broker or the subscription. Call Notify at most once, before draining with Take.
func (s *Subscription) Notify(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notify = f
	if len(s.backlog)+len(s.queue) > 0 || s.err != nil {
		f()
	}
}

// Take appends every waiting event to dst, oldest first, and returns it. Once the
// subscription has ended and nothing is left, it returns the reason (ErrSlow, ErrClosed
// or ErrEnded). Reusing dst across calls makes draining allocation-free.
func (s *Subscription) Take(dst []*Event) ([]*Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.taking = true
	if s.backlog != nil {
		dst = append(dst, s.backlog...)
		s.backlog = nil
	}
	if len(dst) == 0 && len(s.queue) > 0 {
		// Swap buffers rather than copy: the caller's empty slice becomes the next queue.
		dst, s.queue = s.queue, dst[:0]
	} else {
		dst = append(dst, s.queue...)
		clear(s.queue)
		s.queue = s.queue[:0]
	}
	s.sent += uint64(len(dst))
	if len(dst) == 0 && s.err != nil {
		return dst, s.err
	}
	return dst, nil
}

// Sent returns how many events Take has handed out.
func (s *Subscription) Sent() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// Err returns why the subscription ended, or nil while it is open.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Abandon tells the subscription that its consumer has stopped taking events for good
// (its client left) but that Close may come a while later: the departures of a crowd
// are announced a few at a time. Until then, events are dropped rather than queued, so
// that the subscription is not cut off as slow meanwhile: that would announce its
// departure at once, with everyone else's, in the storm the pacing avoids. Abandon
// does not end the subscription; Close does.
func (s *Subscription) Abandon() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone = true
	s.backlog, s.queue = nil, nil
}

// Close detaches the subscription; the other subscribers are told with a user_left event.
// Close is idempotent.
func (s *Subscription) Close() { s.b.detach(s, ErrEnded) }

// push queues ev. It reports false when the queue was full: the subscription is then ended
// with ErrSlow and its queue dropped, and the broker must detach it. It never blocks.
func (s *Subscription) push(ev *Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.gone || ev.ID <= s.skip {
		return true
	}
	if s.gate && (ev.Name == NameNewUser || ev.Name == NameUserLeft) {
		if (ev.Name != NameNewUser || ev.who != s.id) && ev.ID <= s.gateEnd {
			return true
		}
		s.gate = false
	}
	// A subscription whose stream has not begun to be written (its handler is still
	// writing the response head, or waits for the CPU) is not behind: the limit counts
	// from the consumer's first Take. Until then the queue is bounded by how long a
	// handler takes to start, not by how many events a storm of arrivals queues.
	if s.taking && len(s.queue) >= s.limit {
		s.endLocked(ErrSlow)
		return false
	}
	s.queue = append(s.queue, ev)
	if len(s.queue) == 1 {
		// The consumer was told when the queue stopped being empty, and takes all of
		// it: telling it again for every event would be wasted on a busy stream.
		s.wake()
	}
	return true
}

// install puts a replay from a Bus in front of the live events queued meanwhile, and
// drops from those (now and later) the ones up to skip, which the client already has or
// which the replay holds.
func (s *Subscription) install(backlog []*Event, skip uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	s.skip = skip
	kept := s.queue[:0]
	for _, ev := range s.queue {
		if ev.ID > skip {
			kept = append(kept, ev)
		}
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	s.backlog = backlog
	if len(s.backlog)+len(s.queue) > 0 {
		s.wake()
	}
}

// end marks the subscription ended for reason, unless it already is; it reports whether
// this call ended it.
func (s *Subscription) end(reason error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	s.endLocked(reason)
	return true
}

func (s *Subscription) endLocked(reason error) {
	s.err = reason
	if reason == ErrSlow || reason == ErrClosed {
		// Nobody will write these: free them now rather than when the stream notices.
		s.backlog, s.queue = nil, nil
	}
	s.wake()
}

func (s *Subscription) wake() {
	if s.notify != nil {
		s.notify()
		return
	}
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// follows reports whether an event on topic belongs on this subscription.
func (s *Subscription) follows(topic string) bool {
	if topic == "" {
		return true
	}
	for _, t := range s.topics {
		if t == topic {
			return true
		}
	}
	return false
}
