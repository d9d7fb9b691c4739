package broker

import (
	"context"
	"time"
)

// When events are published faster than crier delivers them, two bottlenecks look alike
// from the queues and must be told apart. A subscriber whose connection stops taking
// bytes is behind: its consumer says so (Subscription.SetBlocked), and once Buffer events
// wait for it, it is cut off; nobody else notices. But when crier itself is behind (its
// writers, short of CPU, have not got round to streams that would take more), cutting
// anyone off would be wrong: every subscriber would go, and every event answered 200
// would be lost to them. Then the dispatcher waits, before its next event, for the
// subscriptions the last one filled (awaitRoom); the outbox fills; and publishers wait
// for room in it, up to Options.PublishWait, after which Publish returns ErrBusy and
// accepts nothing. Only a full outbox costs a publisher anything: the check is a length
// compared under the lock it takes anyway.

// DefaultPublishWait is the wait used when Options.PublishWait is zero.
const DefaultPublishWait = 5 * time.Second

// calmAfter is how long no publish must have waited before the broker says that delivery
// caught up: at the edge of its capacity it would otherwise say so many times a second.
const calmAfter = time.Second

// waitRoomLocked waits, releasing the lock meanwhile, until the outbox has room for an
// event. It returns ErrClosed once the broker is closed, ctx's error, or, for a publish
// (bounded), ErrBusy once it has waited Options.PublishWait.
func (b *Broker) waitRoomLocked(ctx context.Context, bounded bool) error {
	if b.closed {
		return ErrClosed
	}
	if len(b.outbox) < outboxLimit {
		return nil
	}
	start := time.Now()
	b.fellBehindLocked(start)
	var timeout <-chan time.Time
	if bounded {
		t := time.NewTimer(b.opts.PublishWait)
		defer t.Stop()
		timeout = t.C
		defer func() {
			b.stats.waits.Add(1)
			b.stats.waited.Add(uint64(time.Since(start)))
		}()
	}
	defer func() { b.lastWait = time.Now() }()
	for !b.closed && len(b.outbox) >= outboxLimit {
		if b.room == nil {
			b.room = make(chan struct{})
		}
		room := b.room
		b.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			b.mu.Lock()
			return ctx.Err()
		case <-timeout:
			b.mu.Lock()
			b.stats.refused.Add(1)
			return ErrBusy
		}
		b.mu.Lock()
	}
	if b.closed {
		return ErrClosed
	}
	return nil
}

// signalRoomLocked wakes the publishers waiting for room.
func (b *Broker) signalRoomLocked() {
	if b.room != nil {
		close(b.room)
		b.room = nil
	}
}

// fellBehindLocked notes that a publisher found the outbox full, and says so once.
func (b *Broker) fellBehindLocked(now time.Time) {
	if b.behind {
		return
	}
	b.behind, b.behindSince = true, now
	b.refusedBefore = b.stats.refused.Load()
	b.log.Warn("delivery is behind publishing: publishes wait for room and are refused after the publish wait",
		"publish_wait", b.opts.PublishWait.String(), "subscribers", len(b.members))
}

// caughtUp runs when the dispatcher has been idle a while after falling behind: it says
// that delivery caught up, or returns how much longer to wait before asking again.
func (b *Broker) caughtUp() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.behind || len(b.outbox) > 0 {
		return 0 // the dispatcher asks again when it is next idle
	}
	if quiet := time.Since(b.lastWait); quiet < calmAfter {
		return calmAfter - quiet
	}
	b.behind = false
	b.log.Info("delivery caught up with publishing",
		"behind_for", b.lastWait.Sub(b.behindSince).Round(time.Millisecond).String(),
		"publishes_refused", b.stats.refused.Load()-b.refusedBefore)
	return 0
}

// awaitRoom runs in the dispatcher before it fans out an event: it waits until every
// subscription that earlier events filled has room again, or has a blocked consumer (the
// next event cuts it off), or has ended. It reports false when the broker closed meanwhile.
func (b *Broker) awaitRoom() bool {
	for len(b.full) > 0 {
		kept := b.full[:0]
		for _, s := range b.full {
			if !s.hasRoom() {
				kept = append(kept, s)
			}
		}
		clear(b.full[len(kept):])
		b.full = kept
		if len(kept) == 0 {
			return true
		}
		select {
		case <-b.spare:
		case <-b.quit:
			return false
		}
	}
	return true
}

// roomFor wakes the dispatcher should it wait in awaitRoom. It never blocks: a
// subscription calls it with its lock held.
func (b *Broker) roomFor() {
	select {
	case b.spare <- struct{}{}:
	default:
	}
}
