package broker

import (
	"context"
	"slices"
	"time"
)

// Bus links a Broker to the other nodes of a cluster through one shared, ordered log.
//
// A Broker with a Bus does not fan out what it publishes: Publish appends the message to
// the log, and every node, the publishing one included, receives it back in log order
// through Deliver. Presence changes go the same way, so published and presence events
// reach every stream of every node in one order. The Bus owns the goroutines that read
// the log.
type Bus interface {
	// Publish appends m to the log and returns the id the log gave it. When m.Key
	// matches an event of the same m.Publisher that the log still retains, nothing is
	// appended: the receipt carries the earlier id with Duplicate set, or the error is
	// ErrKeyConflict when the two differ. The error is nil only once the log holds the
	// event.
	Publish(ctx context.Context, m Message) (Receipt, error)
	// Joined and Left tell the cluster that a subscriber of this node attached or
	// detached; the log then carries the new_user or user_left event. They are called
	// with the Broker's lock held, so they must not block.
	Joined(subscriber string)
	Left(subscriber string)
	// Replay returns the retained events of topics and of broadcasts after the given
	// id that the cluster's history holds.
	Replay(ctx context.Context, after uint64, topics []string) (Replay, error)
	// History serves Broker.History from the cluster's history.
	History(ctx context.Context, topic string, after uint64, limit int) (Page, error)
	// RoomBus keeps the rooms across the cluster.
	RoomBus
	// Ready returns nil while the log can be reached.
	Ready() error
}

// Replay is what a Bus still holds after an id.
type Replay struct {
	// Events are the retained (published) events after the id asked for, oldest first.
	// Their wire bytes need not be set: the Broker encodes them.
	Events []*Event
	// Floor is the highest floor of the topics asked for: the newest id one of them no
	// longer retains. A replay from an id below it is incomplete.
	Floor uint64
	// Head is the newest id in the log when it was read: an id above it is unknown.
	Head uint64
}

// Complete reports whether the replay after id lost nothing.
func (r Replay) Complete(after uint64) bool { return after >= r.Floor && after <= r.Head }

// replayTimeout bounds how long Subscribe waits for a Bus to replay history.
const replayTimeout = 5 * time.Second

// futureSlack is how far beyond the wall clock an id may lie and still be believed:
// ids are microseconds, so a resume id further ahead was not made by crier.
const futureSlack = time.Minute

// gateWait is how long a subscription through a Bus waits for its own new_user, or for
// the mark of its arrival in a room, before it takes presence or that room's events
// regardless (the announcement was lost to a Redis outage).
const gateWait = 5 * time.Second

// Begin tells the Broker where its Bus starts reading the log: every event after head
// will be handed to Deliver, in order. A resume that this node cannot serve from its own
// history waits for Begin (up to replayTimeout), then reads the Bus; without Begin it
// starts with a "missed" event.
func (b *Broker) Begin(head uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clock.last = max(b.clock.last, head)
	b.hist = newHistory(b.limits(), b.clock.last)
	if !b.begun {
		b.begun, b.beganAt = true, b.clock.last
		close(b.began)
	}
}

// awaitBegin waits until the Bus has begun to read the log, or ctx is done, and returns
// whether it has and the head it began at: the events after it reach every
// subscription registered before through Deliver.
func (b *Broker) awaitBegin(ctx context.Context) (uint64, bool) {
	select {
	case <-b.began:
	case <-ctx.Done():
		return 0, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.beganAt, true
}

// Deliver hands the Broker events its Bus read from the log, oldest first. Published
// events are retained and fanned out exactly as a local Publish would; presence events
// are fanned out only; marks (Mark) reach no stream. An event whose id is not above the
// newest one delivered is ignored, so a Bus may hand over an event twice. Deliver never
// blocks on a subscriber; it waits while the dispatcher is a full outbox behind, which
// slows the reading of the log down to the pace of the fan-out.
func (b *Broker) Deliver(evs ...*Event) {
	// Encode outside the lock: it is the costly part, and the events are not shared yet.
	for _, ev := range evs {
		if ev.markOnly() {
			continue
		}
		if ev.Name == "" {
			ev.Name = NameMessage
		}
		ev.retained = !announcement(ev.Name)
		ev.wire = b.encode(ev)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.waitRoomLocked(context.Background(), false) != nil {
		return
	}
	now := b.opts.Now()
	for _, ev := range evs {
		if ev.ID <= b.clock.last {
			continue
		}
		b.clock.last = ev.ID
		switch {
		case ev.markOnly():
		case ev.retained:
			b.retainLocked(ev, now)
		default:
			b.stats.presence.Add(1)
		}
		b.enqueueLocked(step{ev: ev})
	}
	b.signalDeliveredLocked()
}

// Lost tells the Broker that its Bus may have missed events of the log before the event
// with id next (the log was trimmed past the reader, or Redis came back empty or older).
// This node's history no longer vouches for anything older. Every open stream stays
// open and is told in-band, in log order: it gets one "missed" event whose id lies just
// below next, so that a client reconnecting with it resumes from there, and then goes on
// with live events. Ending the streams instead would bring every client of the cluster
// back at once.
func (b *Broker) Lost(next uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	before := b.clock.last
	if next > 0 {
		b.clock.last = max(b.clock.last, next-1)
	}
	b.hist = newHistory(b.limits(), b.clock.last)
	if b.clock.last == before {
		return // no id fits between the last event read and the next: nothing was lost
	}
	ev := &Event{ID: b.clock.last, Name: NameMissed, Time: b.opts.Now(), Data: missedData(lostMessage, FormatID(before))}
	ev.wire = b.encode(ev)
	b.stats.gaps.Add(1)
	b.enqueueLocked(step{ev: ev})
}

// SubscriberIDs returns the ids of the open subscriptions, for a Bus that must tell the
// cluster again who is here (after Redis lost its state, say). With presence off it
// returns none: the Bus was never told of them, and must not announce them as gone
// when this node dies.
func (b *Broker) SubscriberIDs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.opts.Presence {
		return nil
	}
	ids := make([]string, 0, len(b.members))
	for s := range b.members {
		ids = append(ids, s.id)
	}
	return ids
}

// replayRemote completes the subscription of s, registered while the newest delivered id
// was seen, with what the Bus still holds after lastID: the events up to seen come from
// the log, the later ones from the live queue, which skips what the client already has.
func (b *Broker) replayRemote(s *Subscription, lastID string, seen uint64, begun bool) {
	id, ok := ParseID(lastID)
	var (
		rp  Replay
		err = ErrClosed
	)
	if ok {
		ctx, cancel := context.WithTimeout(context.Background(), replayTimeout)
		if !begun {
			// Registered before the log was read from anywhere: live events start
			// after the head the reader begins at.
			seen, begun = b.awaitBegin(ctx)
		}
		if begun {
			rp, err = b.sharedReplay(ctx, id, s.topics, seen)
		}
		cancel()
	}
	// Events after seen reach s through its live queue.
	upToSeen := func(evs []*Event) []*Event {
		return slices.DeleteFunc(evs, func(ev *Event) bool { return ev.ID > seen || !s.follows(ev.Topic) })
	}
	var backlog []*Event
	var skip uint64
	switch {
	case !ok:
		// Not an id crier made: say so, then everything this node holds.
		b.mu.Lock()
		evs := upToSeen(b.hist.merged(s.topics, 0))
		backlog = append([]*Event{b.missedLocked(lastID, missedID(b.hist.floorOf(s.topics), evs))}, evs...)
		b.mu.Unlock()
	case err != nil:
		// The log cannot be read (Redis is unreachable, or this node has not begun to
		// read it). When this node's history reaches back to the id, nothing is lost:
		// the client is ahead of this node, and the reader hands over the rest in order
		// once it can. Otherwise say so, then give what this node holds after the id.
		plausible := id <= uint64(b.opts.Now().Add(futureSlack).UnixMicro())
		b.mu.Lock()
		evs := upToSeen(b.hist.merged(s.topics, id))
		floor := b.hist.floorOf(s.topics)
		if begun && plausible && floor <= id {
			backlog = evs
		} else {
			// The notice's id is never below the client's own: a reconnect after it
			// must not replay what the client already has.
			if plausible {
				floor = max(floor, id)
			}
			backlog = append([]*Event{b.missedLocked(lastID, missedID(floor, evs))}, evs...)
		}
		b.mu.Unlock()
		if plausible {
			skip = id
		}
	default:
		// rp is shared with other resumes: filter into a slice of this one's own.
		var evs []*Event
		for _, ev := range rp.Events {
			if ev.ID > id && ev.ID <= seen && s.follows(ev.Topic) {
				evs = append(evs, ev)
			}
		}
		if !rp.Complete(id) {
			b.mu.Lock()
			backlog = append(backlog, b.missedLocked(lastID, missedID(rp.Floor, evs)))
			b.mu.Unlock()
		}
		backlog = append(backlog, evs...)
		skip = min(id, rp.Head)
	}
	b.stats.replayed.Add(uint64(len(backlog)))
	s.install(backlog, skip)
}

// missedLocked makes the "missed" notice for a resume from lastID, with id floor.
func (b *Broker) missedLocked(lastID string, floor uint64) *Event {
	ev := &Event{ID: floor, Name: NameMissed, Time: b.opts.Now(), Data: missedData(resumeMessage, lastID)}
	ev.wire = b.encode(ev)
	return ev
}
