// Package broker is crier's heart: it fans events out to subscribers, announces who comes
// and goes, keeps recent history for lossless resume, and cuts off subscribers that fall
// behind. It knows nothing of HTTP or of other nodes.
package broker

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Broker. The zero value is ready for use: no history, no presence
// events, queues of DefaultBuffer, no subscriber limit, and events without wire bytes.
type Options struct {
	// History is how many of the most recent events of each topic are kept for resume,
	// History and idempotent retries; broadcasts are kept as one topic of their own. Zero
	// keeps none.
	History int
	// HistoryTTL, when positive, makes events leave history once they are older.
	HistoryTTL time.Duration
	// HistoryMemory, when positive, bounds the bytes that all retained events take
	// together (data, wire bytes and the structures that hold them); beyond it the oldest
	// events of any topic leave first. Zero sets no bound.
	HistoryMemory int64
	// Buffer is how many events may wait for a subscriber. Once that many wait while
	// its connection is blocked (Subscription.SetBlocked), it is cut off; while it is
	// not, the broker waits for it instead. Zero means DefaultBuffer.
	Buffer int
	// PublishWait bounds how long Publish waits for room while delivery is behind
	// publishing; then it returns ErrBusy and accepts nothing. Zero means
	// DefaultPublishWait.
	PublishWait time.Duration
	// Log is told once when delivery falls behind publishing and once when it has
	// caught up. Nil logs nothing.
	Log *slog.Logger
	// MaxSubscribers limits the open subscriptions; zero means no limit.
	MaxSubscribers int
	// Presence makes the broker announce every attach (new_user) and detach (user_left)
	// to every subscriber.
	Presence bool
	// Encode turns each event into its wire bytes, once. Nil leaves Event.Wire empty.
	Encode Encoder
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Bus, when set, makes the broker one node of a cluster: events are ordered and
	// numbered by the bus's shared log, which hands them back through Deliver, and
	// presence counts the whole cluster. Nil keeps everything in this process.
	Bus Bus
	// Rooms reports whether a topic is a room, whose followers are told which users come
	// and go (join and leave, see rooms.go). Nil: no topic is a room.
	Rooms func(topic string) bool
	// Observe, when set, is told of every connect, disconnect, join and leave of this
	// node's streams, in order. It must not block: it may be called with the broker's lock held.
	Observe func(Activity)
}

// DefaultBuffer is the queue length used when Options.Buffer is zero.
const DefaultBuffer = 256

// Request describes a subscription.
type Request struct {
	Topics []string // topics to follow besides broadcasts and presence events
	// Resume asks for the retained events after LastEventID before the live ones.
	Resume      bool
	LastEventID string
	User        string // the stream's user: its JWT's sub; "" for an anonymous stream
}

// Receipt tells a publisher what became of its message.
type Receipt struct {
	ID        uint64
	Duplicate bool // an earlier publish with the same key is still retained; nothing was sent
}

// Broker fans events out to subscriptions. It runs one goroutine, the dispatcher, which
// does the fan-out (dispatch.go); Close stops it. Safe for concurrent use; Publish never
// blocks on a subscriber.
type Broker struct {
	opts   Options
	encode Encoder
	log    *slog.Logger

	mu      sync.Mutex
	clock   clock
	hist    *history
	members map[*Subscription]struct{} // open subscriptions
	rooms   map[string]map[string]int  // room -> user -> the user's streams in it on this node
	closed  bool
	begun   bool // without a Bus always; with one, once Begin has been called
	// With a Bus: closed by the first Begin, which sets beganAt, the head it began at.
	began     chan struct{}
	beganAt   uint64
	flights   map[string]*replayFlight // replays from the Bus under way, by what they read
	replaying chan struct{}            // a slot per read of the Bus under way (replaySlots)
	// delivered is closed and replaced whenever a Bus delivers events, so that a
	// publisher can wait for its own event.
	delivered chan struct{}
	outbox    []step        // for the dispatcher, in order
	room      chan struct{} // closed when the dispatcher empties the outbox; made by a waiting publisher
	// Delivery is behind publishing from a publisher's first wait for room until the
	// dispatcher has been idle and no publisher has waited for calmAfter (overload.go).
	behind        bool
	behindSince   time.Time
	lastWait      time.Time // when a publisher last stopped waiting for room
	refusedBefore uint64    // stats.refused when delivery fell behind

	kick    chan struct{} // cap 1: the outbox has something
	spare   chan struct{} // cap 1: a subscription the dispatcher waits for has room
	quit    chan struct{} // closed by Close
	stopped chan struct{} // closed when the dispatcher has returned

	// The dispatcher's own: who is sent what.
	all     roster
	byTopic map[string]*roster
	slow    []*Subscription
	full    []*Subscription // filled by the last event while not blocked: awaitRoom
	marked  uint64          // the newest RoomBus mark dispatched (Subscription.marks)

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
	if opts.PublishWait <= 0 {
		opts.PublishWait = DefaultPublishWait
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	b := &Broker{
		opts:    opts,
		encode:  opts.Encode,
		log:     opts.Log,
		clock:   clock{now: opts.Now},
		members: make(map[*Subscription]struct{}),
		rooms:   make(map[string]map[string]int),
		kick:    make(chan struct{}, 1),
		spare:   make(chan struct{}, 1),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
		byTopic: make(map[string]*roster),
	}
	if b.encode == nil {
		b.encode = func(*Event) []byte { return nil }
	}
	go b.dispatch()
	if opts.Bus != nil {
		// The bus's log numbers events; until it says where it starts, nothing here is
		// history.
		b.hist = newHistory(b.limits(), 0)
		b.began = make(chan struct{})
		b.replaying = make(chan struct{}, replaySlots)
		return b
	}
	// Ids from before this start (an earlier run of the process) are not retained.
	start, _ := b.clock.next()
	b.hist = newHistory(b.limits(), start)
	b.begun = true
	return b
}

// limits are the bounds of history that Options set.
func (b *Broker) limits() limits {
	return limits{perTopic: max(b.opts.History, 0), ttl: b.opts.HistoryTTL, memory: b.opts.HistoryMemory}
}

// Publish assigns m the next id, retains it, and hands it to the dispatcher, which queues
// it for every subscriber that follows its topic; it returns without waiting for that.
// A message whose Key matches a retained event of the same publisher is not sent again:
// the receipt carries the earlier id, or, when the two differ in topic, name or data,
// the error is ErrKeyConflict. Publish waits only while the dispatcher is a full outbox
// behind (delivery is behind publishing: see overload.go); after Options.PublishWait it
// returns ErrBusy, having accepted nothing, and ctx ends the wait earlier.
func (b *Broker) Publish(ctx context.Context, m Message) (Receipt, error) {
	if m.Name == "" {
		m.Name = NameMessage
	}
	if b.opts.Bus != nil {
		return b.publishBus(ctx, m)
	}
	if b.opts.History > 0 && cap(m.Data)-len(m.Data) > 64+len(m.Data)/8 {
		// Retained data should not hold on to the spare room of a read buffer.
		m.Data = bytes.Clone(m.Data)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.waitRoomLocked(ctx, true); err != nil {
		return Receipt{}, err
	}
	now := b.opts.Now()
	if m.Key != "" {
		b.hist.expire(now)
		if ev, ok := b.hist.byKey(m.Publisher, m.Key); ok {
			if !ev.Same(m) {
				return Receipt{}, ErrKeyConflict
			}
			b.stats.duplicates.Add(1)
			return Receipt{ID: ev.ID, Duplicate: true}, nil
		}
	}
	id, t := b.clock.next()
	ev := &Event{ID: id, Topic: m.Topic, Name: m.Name, Data: m.Data, Key: m.Key, Text: m.Text, Time: t,
		retained: true, publisher: m.Publisher}
	ev.wire = b.encode(ev)
	b.retainLocked(ev, now)
	b.enqueueLocked(step{ev: ev})
	return Receipt{ID: id}, nil
}

// publishBus hands m to the bus; the event comes back through Deliver. While this node's
// delivery is behind, it waits for room first, as a local publish does: the log would
// otherwise take events faster than this node can deliver them.
func (b *Broker) publishBus(ctx context.Context, m Message) (Receipt, error) {
	b.mu.Lock()
	err := b.waitRoomLocked(ctx, true)
	b.mu.Unlock()
	if err != nil {
		return Receipt{}, err
	}
	r, err := b.opts.Bus.Publish(ctx, m)
	if err != nil {
		return r, err
	}
	if r.Duplicate {
		b.stats.duplicates.Add(1)
	}
	b.awaitDelivery(ctx, r.ID)
	return r, nil
}

// deliveryWait bounds how long a publish through a Bus waits for its event to come back.
const deliveryWait = time.Second

// awaitDelivery waits until this node has delivered the event with id, so that what a
// publisher sees next on this node (a resume, say) includes its event. The event is in
// the log already: giving up after deliveryWait loses nothing.
func (b *Broker) awaitDelivery(ctx context.Context, id uint64) {
	timer := time.NewTimer(deliveryWait)
	defer timer.Stop()
	for {
		b.mu.Lock()
		done := b.clock.last >= id || b.closed
		if b.delivered == nil {
			b.delivered = make(chan struct{})
		}
		wait := b.delivered
		b.mu.Unlock()
		if done {
			return
		}
		select {
		case <-wait:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// retainLocked keeps a published event in history.
func (b *Broker) retainLocked(ev *Event, now time.Time) {
	b.hist.add(ev, now)
	if ev.Topic == "" {
		b.stats.broadcasts.Add(1)
	} else {
		b.stats.topical.Add(1)
	}
}

// Subscribe opens a subscription. With r.Resume, the retained events after r.LastEventID
// that it follows come first, in order, then live events: none twice, none skipped. When
// history no longer covers that id (or the id is unknown), a "missed" event precedes the
// replay of everything retained. With presence on, every subscriber, the new one included,
// is sent a new_user event.
//
// With a Bus, a resume from an id older than this node's own history is served from the
// bus's log: the subscription is registered first, so that live events queue up while
// the log is read, and the two are joined without a gap or a duplicate.
func (b *Broker) Subscribe(r Request) (*Subscription, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	if b.opts.MaxSubscribers > 0 && len(b.members) >= b.opts.MaxSubscribers {
		b.mu.Unlock()
		return nil, ErrFull
	}
	s := newSubscription(b, newSubscriberID(), r.Topics, b.opts.Buffer, b.opts.Now())
	s.user = r.User
	remote := false
	if r.Resume {
		if b.opts.Bus != nil && !b.coversLocked(r.LastEventID, r.Topics) {
			remote = true
		} else {
			s.backlog = b.replayLocked(s, r.LastEventID)
			b.stats.replayed.Add(uint64(len(s.backlog)))
			if len(s.backlog) > 0 {
				s.wake()
			}
		}
	}
	seen, begun := b.clock.last, b.begun
	b.registerLocked(s)
	b.mu.Unlock()
	if remote {
		b.replayRemote(s, r.LastEventID, seen, begun)
	}
	return s, nil
}

// registerLocked adds s to the subscribers, to be sent every event from now on, and
// announces it.
func (b *Broker) registerLocked(s *Subscription) {
	b.members[s] = struct{}{}
	b.enqueueLocked(step{join: s})
	b.stats.attached.Add(1)
	b.observeLocked(ActivityConnect, s, "")
	if b.opts.Bus != nil {
		s.gateEnd = uint64(s.started.Add(gateWait).UnixMicro())
	}
	if b.opts.Presence {
		if b.opts.Bus != nil {
			s.gate = true
			b.opts.Bus.Joined(s.id)
		} else {
			b.announceLocked(NameNewUser, s)
		}
	}
	b.enterRoomsLocked(s)
}

// coversLocked reports whether this node's own history holds every event of topics (and
// broadcasts) after lastID.
func (b *Broker) coversLocked(lastID string, topics []string) bool {
	id, ok := ParseID(lastID)
	b.hist.expire(b.opts.Now())
	return ok && b.begun && id <= b.clock.last && b.hist.floorOf(topics) <= id
}

// replayLocked returns what a subscription resuming after lastID is owed from history:
// the retained events of its topics and broadcasts after that id, in id order, after a
// "missed" notice when one of those topics no longer retains everything after it.
func (b *Broker) replayLocked(s *Subscription, lastID string) []*Event {
	covered := b.coversLocked(lastID, s.topics)
	id, _ := ParseID(lastID)
	evs := b.hist.merged(s.topics, id)
	if covered {
		return evs
	}
	return append([]*Event{b.missedLocked(lastID, missedID(b.hist.floorOf(s.topics), evs))}, evs...)
}

// missedID is the id of a "missed" notice followed by evs: the newest id lost, but below
// the first event replayed, since ids increase along a stream.
func missedID(floor uint64, evs []*Event) uint64 {
	if len(evs) > 0 && evs[0].ID <= floor {
		return evs[0].ID - 1
	}
	return floor
}

// Page is part of one topic's history.
type Page struct {
	Events []*Event // oldest first; their wire bytes need not be set
	// Missed reports that the topic no longer retains every event after the id asked for.
	Missed bool
}

// History returns up to limit (0: no limit) retained events of topic with an id above
// after, oldest first; after 0 asks for everything retained, and nothing is missed then.
// With a Bus it reads the cluster's history.
func (b *Broker) History(ctx context.Context, topic string, after uint64, limit int) (Page, error) {
	if b.opts.Bus != nil {
		return b.opts.Bus.History(ctx, topic, after, limit)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return Page{}, ErrClosed
	}
	b.hist.expire(b.opts.Now())
	return Page{
		Events: b.hist.after([]*Event{}, topic, after, limit),
		Missed: after > 0 && after < b.hist.floor(topic),
	}, nil
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
	if _, ok := b.members[s]; !ok {
		return
	}
	delete(b.members, s)
	b.enqueueLocked(step{leave: s})
	b.stats.detached.Add(1)
	b.exitRoomsLocked(s)
	b.observeLocked(ActivityDisconnect, s, "")
	if b.opts.Presence {
		if b.opts.Bus != nil {
			b.opts.Bus.Left(s.id)
		} else {
			b.announceLocked(NameUserLeft, s)
		}
	}
}

// announceLocked sends a presence event about s to every subscriber.
func (b *Broker) announceLocked(name string, s *Subscription) {
	id, t := b.clock.next()
	ev := &Event{ID: id, Name: name, Time: t, Data: presenceData(name, s.id, len(b.members), t)}
	ev.wire = b.encode(ev)
	b.stats.presence.Add(1)
	b.enqueueLocked(step{ev: ev})
}

// signalDeliveredLocked wakes publishers waiting for their events.
func (b *Broker) signalDeliveredLocked() {
	if b.delivered != nil {
		close(b.delivered)
		b.delivered = nil
	}
}

// Close ends every subscription with ErrClosed, refuses new ones and stops the
// dispatcher. No presence events are sent: everyone is leaving. Close is idempotent.
func (b *Broker) Close() {
	b.mu.Lock()
	first := !b.closed
	if first {
		b.closed = true
		b.signalDeliveredLocked()
		b.signalRoomLocked()
		for s := range b.members {
			s.end(ErrClosed)
			b.observeRoomsLeftLocked(s)
			// No presence event, but an observer (a backend) still needs to hear it.
			b.observeLocked(ActivityDisconnect, s, "")
		}
		clear(b.members)
		clear(b.rooms)
		b.outbox = nil
	}
	b.mu.Unlock()
	if first {
		close(b.quit)
	}
	<-b.stopped
}

// Ready returns ErrClosed once the broker is closed; with a Bus, the bus's error while
// its log cannot be reached; nil otherwise.
func (b *Broker) Ready() error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if b.opts.Bus != nil {
		return b.opts.Bus.Ready()
	}
	return nil
}

// Subscribers returns the number of open subscriptions.
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.members)
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
	deliveries, replayed, cutoff, duplicates, gaps    atomic.Uint64
	refused, waits, waited                            atomic.Uint64 // waited: nanoseconds
}
