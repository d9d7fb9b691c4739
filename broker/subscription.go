package broker

import (
	"sync"
	"time"
)

// Subscription is one open stream's view of the broker: a bounded queue of shared events.
// The stream drains it with Take (or Peek and Consume) whenever Ready fires, and says with
// SetBlocked when its connection stops taking bytes. Safe for concurrent use.
//
// The queue holds at most the broker's Buffer events; what a subscription holds beyond
// the shared events is that many pointers (and a replay's, see Peek). When the queue is
// full, two cases differ. A consumer that is blocked (its connection is full) is behind:
// the next event cuts it off with ErrSlow. A consumer that is not blocked has simply not
// been served yet: crier's own writers are behind, and the dispatcher waits for it before
// it fans out another event, so that publishers wait in turn.
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
	queue   []*Event // live events waiting: queue[head:], at most limit of them
	head    int      // events before it were consumed (Consume)
	blocked bool     // the consumer's connection stopped taking bytes (SetBlocked)
	awaited bool     // the dispatcher waits for this queue to have room
	err     error    // why the subscription ended; nil while it is open
	ready   chan struct{}
	notify  func() // set by Notify; replaces signalling ready
	sent    uint64 // events handed out by Take and Consume
	gone    bool   // the consumer stopped taking (Abandon): events are dropped, not queued
	skip    uint64 // live events up to this id were replayed already (resume through a Bus)
	// gate, through a Bus, holds back presence events until the subscription's own
	// new_user (or, should that never come, an event with an id past gateEnd): those
	// before it in the log are about a cluster this stream was not part of yet.
	gate    bool
	gateEnd uint64
	// marks, through a Bus, hold back the join and leave of each room it entered until
	// the log reaches the mark of its arrival there (Broker.marked), or gateEnd. Set
	// before the dispatcher routes the subscription; the dispatcher's own after that.
	marks []roomMark
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
	if len(s.backlog)+s.live() > 0 || s.err != nil {
		f()
	}
}

// Take appends every waiting event to dst, oldest first, and returns it. Once the
// subscription has ended and nothing is left, it returns the reason (ErrSlow, ErrClosed
// or ErrEnded). Reusing dst across calls makes draining allocation-free.
func (s *Subscription) Take(dst []*Event) ([]*Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.backlog != nil {
		dst = append(dst, s.backlog...)
		s.backlog = nil
	}
	if len(dst) == 0 && s.head == 0 && len(s.queue) > 0 {
		// Swap buffers rather than copy: the caller's empty slice becomes the next queue.
		dst, s.queue = s.queue, dst[:0]
	} else {
		dst = append(dst, s.queue[s.head:]...)
		clear(s.queue)
		s.queue, s.head = s.queue[:0], 0
	}
	s.sent += uint64(len(dst))
	s.roomLocked()
	if len(dst) == 0 && s.err != nil {
		return dst, s.err
	}
	return dst, nil
}

// Peek appends to dst up to max of the waiting events, oldest first, and leaves them
// waiting: they count against the queue's limit until Consume removes them, so that a
// consumer that writes a few at a time holds no copy of its own. Once the subscription
// has ended and nothing is left, it returns the reason, as Take does.
func (s *Subscription) Peek(dst []*Event, max int) ([]*Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(max, len(s.backlog))
	dst = append(dst, s.backlog[:n]...)
	if rest := max - n; rest > 0 {
		live := s.queue[s.head:]
		dst = append(dst, live[:min(rest, len(live))]...)
	}
	if len(dst) == 0 && s.err != nil {
		return dst, s.err
	}
	return dst, nil
}

// Consume removes the n oldest waiting events, which the consumer has written.
func (s *Subscription) Consume(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent += uint64(n)
	if k := min(n, len(s.backlog)); k > 0 {
		clear(s.backlog[:k])
		if s.backlog = s.backlog[k:]; len(s.backlog) == 0 {
			s.backlog = nil // a replay's slice goes as soon as it is written
		}
		n -= k
	}
	if n > 0 {
		n = min(n, s.live())
		clear(s.queue[s.head : s.head+n])
		s.head += n
		if s.head == len(s.queue) {
			s.queue, s.head = s.queue[:0], 0
		}
	}
	s.roomLocked()
}

// SetBlocked tells the subscription whether its consumer's connection has stopped taking
// bytes: a write would block, or (where the consumer cannot tell) one is under way. Only
// a blocked subscription is cut off when its queue is full; one that is not blocked makes
// the broker wait for its consumer instead, since it is crier, not the client, that is
// behind. The consumer should say so as soon as it knows, and clear it when the
// connection takes bytes again.
func (s *Subscription) SetBlocked(blocked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked = blocked
	s.roomLocked()
}

// Sent returns how many events Take and Consume have handed out.
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
	s.backlog, s.queue, s.head = nil, nil, 0
	s.roomLocked()
}

// Close detaches the subscription; the other subscribers are told with a user_left event.
// Close is idempotent.
func (s *Subscription) Close() { s.b.detach(s, ErrEnded) }

// pushResult is what became of an event offered to a subscription.
type pushResult uint8

const (
	pushed     pushResult = iota // queued, or not for this subscription
	pushedFull                   // queued, and the queue is full while its consumer is not blocked
	pushedSlow                   // the subscription was cut off with ErrSlow instead
)

// push queues ev. When the queue is full and the consumer blocked, the subscription is
// ended with ErrSlow and its queue dropped, and the broker must detach it; a full queue
// whose consumer is not blocked is reported, and the broker waits for room (hasRoom)
// before the next event. It never blocks.
func (s *Subscription) push(ev *Event) pushResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.gone || ev.ID <= s.skip {
		return pushed
	}
	if s.gate && !ev.retained && ev.Name != NameMissed {
		if (ev.Name != NameNewUser || ev.who != s.id) && ev.ID <= s.gateEnd {
			return pushed
		}
		s.gate = false
	}
	if len(s.marks) > 0 && ev.Topic != "" && !ev.retained && ev.ID <= s.gateEnd && s.b.marked < s.markOf(ev.Topic) {
		return pushed
	}
	n := s.live()
	if n >= s.limit && s.blocked {
		s.endLocked(ErrSlow)
		return pushedSlow
	}
	// Not blocked but full happens only when the consumer unblocked without taking
	// since the broker last looked: one event past the limit, then the broker waits.
	if len(s.queue) == cap(s.queue) && s.head > 0 {
		k := copy(s.queue, s.queue[s.head:])
		clear(s.queue[k:])
		s.queue, s.head = s.queue[:k], 0
	}
	s.queue = append(s.queue, ev)
	if n == 0 {
		// The consumer was told when the queue stopped being empty, and takes all of
		// it: telling it again for every event would be wasted on a busy stream.
		s.wake()
	}
	if n+1 >= s.limit && !s.blocked {
		return pushedFull
	}
	return pushed
}

// markOf returns the mark of s's arrival in the room topic; 0 when it has none.
func (s *Subscription) markOf(topic string) uint64 {
	for _, m := range s.marks {
		if m.topic == topic {
			return m.mark
		}
	}
	return 0
}

// live is the number of live events waiting.
func (s *Subscription) live() int { return len(s.queue) - s.head }

// hasRoom reports whether the broker may fan out the next event without waiting for s;
// when not, s tells the broker once it has (roomLocked).
func (s *Subscription) hasRoom() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.awaited = !s.roomy()
	return !s.awaited
}

// roomy: the queue has room to spare, or it does not matter because the consumer is
// blocked (the next event cuts it off) or gone. Waiting for half the queue rather than
// one slot lets the broker and the consumer take turns in batches.
func (s *Subscription) roomy() bool {
	return s.err != nil || s.gone || s.blocked || s.live() <= s.limit/2
}

// roomLocked tells the broker, should it wait for this subscription, that it has room.
func (s *Subscription) roomLocked() {
	if s.awaited && s.roomy() {
		s.awaited = false
		s.b.roomFor()
	}
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
	for _, ev := range s.queue[s.head:] {
		if ev.ID > skip {
			kept = append(kept, ev)
		}
	}
	clear(s.queue[len(kept):])
	s.queue, s.head = kept, 0
	s.backlog = backlog
	if len(s.backlog)+len(s.queue) > 0 {
		s.wake()
	}
	s.roomLocked()
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
		s.backlog, s.queue, s.head = nil, nil, 0
	}
	s.wake()
	s.roomLocked()
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
