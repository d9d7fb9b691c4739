// Package broker is crier's heart: it fans events out to subscribers, announces who comes
// and goes, keeps recent history for lossless resume, and cuts off subscribers that fall
// behind. It knows nothing of HTTP or of other nodes.
package broker

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Broker. The zero value is ready for use: no history, no presence
// events, queues of DefaultBuffer, no subscriber limit, and events without wire bytes.
type Options struct {
	// History is how many of the most recent events are kept for resume and idempotent
	// retries. Zero keeps none.
	History int
	// Buffer is how many events may wait for a subscriber before it is cut off.
	// Zero means DefaultBuffer.
	Buffer int
	// MaxSubscribers limits the open subscriptions; zero means no limit.
	MaxSubscribers int
	// Presence makes the broker announce every attach (new_user) and detach (user_left)
	// to every subscriber.
	Presence bool
	// Encode turns each event into its wire bytes, once. Nil leaves Event.Wire empty.
	Encode Encoder
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultBuffer is the queue length used when Options.Buffer is zero.
const DefaultBuffer = 256

// Request describes a subscription.
type Request struct {
	Topics []string // topics to follow besides broadcasts and presence events
	// Resume asks for the retained events after LastEventID before the live ones.
	Resume      bool
	LastEventID string
}

// Receipt tells a publisher what became of its message.
type Receipt struct {
	ID        uint64
	Duplicate bool // an earlier publish with the same key is still retained; nothing was sent
}

// Broker fans events out to subscriptions. It starts no goroutines. Safe for concurrent
// use; Publish never blocks on a subscriber.
type Broker struct {
	opts   Options
	encode Encoder

	mu      sync.Mutex
	clock   clock
	hist    *history
	all     map[*Subscription]struct{}
	byTopic map[string]map[*Subscription]struct{}
	closed  bool

	stats counters
}

// New returns a Broker configured by opts.
func New(opts Options) *Broker {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	b := &Broker{
		opts:    opts,
		encode:  opts.Encode,
		clock:   clock{now: opts.Now},
		all:     make(map[*Subscription]struct{}),
		byTopic: make(map[string]map[*Subscription]struct{}),
	}
	if b.encode == nil {
		b.encode = func(*Event) []byte { return nil }
	}
	// Ids from before this start (an earlier run of the process) are not retained.
	start, _ := b.clock.next()
	b.hist = newHistory(max(opts.History, 0), start)
	return b
}

// Publish assigns m the next id and queues it for every subscriber that follows its topic.
// A message whose Key matches a retained event is not sent again: the receipt carries the
// earlier id. The context is unused in memory; it is part of the signature that a
// cross-node broker shares.
func (b *Broker) Publish(_ context.Context, m Message) (Receipt, error) {
	if m.Name == "" {
		m.Name = NameMessage
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return Receipt{}, ErrClosed
	}
	if m.Key != "" {
		if ev, ok := b.hist.byKey(m.Key); ok {
			b.stats.duplicates.Add(1)
			return Receipt{ID: ev.ID, Duplicate: true}, nil
		}
	}
	id, t := b.clock.next()
	ev := &Event{ID: id, Topic: m.Topic, Name: m.Name, Data: m.Data, Key: m.Key, Time: t, retained: true}
	ev.wire = b.encode(ev)
	b.hist.add(ev)
	if m.Topic == "" {
		b.stats.broadcasts.Add(1)
	} else {
		b.stats.topical.Add(1)
	}
	b.fanoutLocked(ev)
	return Receipt{ID: id}, nil
}

// Subscribe opens a subscription. With r.Resume, the retained events after r.LastEventID
// that it follows come first, in order, then live events: none twice, none skipped. When
// history no longer covers that id (or the id is unknown), a "missed" event precedes the
// replay of everything retained. With presence on, every subscriber, the new one included,
// is sent a new_user event.
func (b *Broker) Subscribe(r Request) (*Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if b.opts.MaxSubscribers > 0 && len(b.all) >= b.opts.MaxSubscribers {
		return nil, ErrFull
	}
	s := newSubscription(b, newSubscriberID(), r.Topics, b.opts.Buffer, b.opts.Now())
	if r.Resume {
		s.backlog = b.replayLocked(s, r.LastEventID)
		b.stats.replayed.Add(uint64(len(s.backlog)))
		if len(s.backlog) > 0 {
			s.wake()
		}
	}
	b.all[s] = struct{}{}
	for _, t := range s.topics {
		subs := b.byTopic[t]
		if subs == nil {
			subs = make(map[*Subscription]struct{})
			b.byTopic[t] = subs
		}
		subs[s] = struct{}{}
	}
	b.stats.attached.Add(1)
	if b.opts.Presence {
		b.announceLocked(NameNewUser, s)
	}
	return s, nil
}

// replayLocked returns what a subscription resuming after lastID is owed from history.
func (b *Broker) replayLocked(s *Subscription, lastID string) []*Event {
	id, ok := ParseID(lastID)
	match := func(ev *Event) bool { return s.follows(ev.Topic) }
	if ok && b.hist.covers(id) && id <= b.clock.last {
		return b.hist.after(nil, id, match)
	}
	if !ok {
		id = 0
	}
	missed := &Event{ID: b.hist.floor, Name: NameMissed, Time: b.opts.Now(), Data: missedData(lastID)}
	missed.wire = b.encode(missed)
	return b.hist.after([]*Event{missed}, id, match)
}

// detach removes s and, unless it was already gone, announces that it left.
func (b *Broker) detach(s *Subscription, reason error) {
	if !s.end(reason) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.removeLocked(s)
}

// removeLocked unregisters an ended subscription and announces it.
func (b *Broker) removeLocked(s *Subscription) {
	if _, ok := b.all[s]; !ok {
		return
	}
	delete(b.all, s)
	for _, t := range s.topics {
		if subs := b.byTopic[t]; subs != nil {
			delete(subs, s)
			if len(subs) == 0 {
				delete(b.byTopic, t)
			}
		}
	}
	b.stats.detached.Add(1)
	if b.opts.Presence {
		b.announceLocked(NameUserLeft, s)
	}
}

// announceLocked sends a presence event about s to every subscriber.
func (b *Broker) announceLocked(name string, s *Subscription) {
	id, t := b.clock.next()
	ev := &Event{ID: id, Name: name, Time: t, Data: presenceData(name, s.id, len(b.all), t)}
	ev.wire = b.encode(ev)
	b.stats.presence.Add(1)
	b.fanoutLocked(ev)
}

// fanoutLocked queues ev for every subscriber that follows its topic. Subscribers whose
// queue is full are cut off, and their departure announced in turn.
func (b *Broker) fanoutLocked(ev *Event) {
	var slow []*Subscription
	deliver := func(subs map[*Subscription]struct{}) {
		for s := range subs {
			if !s.push(ev) {
				slow = append(slow, s)
			}
		}
		b.stats.deliveries.Add(uint64(len(subs) - len(slow)))
	}
	if ev.Topic == "" {
		deliver(b.all)
	} else {
		deliver(b.byTopic[ev.Topic])
	}
	for _, s := range slow {
		b.stats.cutoff.Add(1)
		b.removeLocked(s)
	}
}

// Close ends every subscription with ErrClosed and refuses new ones. No presence events
// are sent: everyone is leaving. Close is idempotent.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for s := range b.all {
		s.end(ErrClosed)
	}
	clear(b.all)
	clear(b.byTopic)
}

// Ready returns ErrClosed once the broker is closed, nil before.
func (b *Broker) Ready() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	return nil
}

// Subscribers returns the number of open subscriptions.
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.all)
}

func newSubscriberID() string {
	var raw [8]byte
	v := rand.Uint64()
	for i := range raw {
		raw[i] = byte(v >> (8 * i))
	}
	return hex.EncodeToString(raw[:])
}

// counters are the broker's running totals, read by Stats.
type counters struct {
	attached, detached, broadcasts, topical, presence atomic.Uint64
	deliveries, replayed, cutoff, duplicates          atomic.Uint64
}
