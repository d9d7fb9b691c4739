package broker

import "time"

// The broker decides, under its lock, what happens and in which order: an event gets its
// id, a subscription joins or leaves. Carrying that out for every subscriber (the fan-out,
// one queue per subscriber) is the dispatcher's work, on its own goroutine, in the same
// order. A publish therefore costs the same with ten thousand subscribers as with one,
// and a publisher never waits for the fan-out of someone else's event.

// step is one thing for the dispatcher to do: fan ev out, or start (join) or stop
// (leave) routing events to a subscription.
type step struct {
	ev    *Event
	join  *Subscription
	leave *Subscription
}

// outboxLimit bounds the events waiting for the dispatcher; a publisher that finds the
// outbox full waits for room (overload.go), so that publishers faster than the fan-out
// are slowed down instead of queuing without bound.
const outboxLimit = 4096

// enqueueLocked hands st to the dispatcher.
func (b *Broker) enqueueLocked(st step) {
	b.outbox = append(b.outbox, st)
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// dispatch carries out the outbox until Close; it owns the routing tables.
func (b *Broker) dispatch() {
	defer close(b.stopped)
	var (
		steps []step
		calm  *time.Timer // while behind and idle: when to say that delivery caught up
		calmC <-chan time.Time
	)
	defer func() {
		if calm != nil {
			calm.Stop()
		}
	}()
	var expiry <-chan time.Time
	if ttl := b.opts.HistoryTTL; ttl > 0 {
		// Expired events leave history even when nothing is published or read, so that
		// a quiet topic's memory is given back.
		tick := time.NewTicker(min(max(ttl/8, 10*time.Millisecond), time.Second))
		defer tick.Stop()
		expiry = tick.C
	}
	for {
		select {
		case <-b.kick:
		case <-expiry:
			b.mu.Lock()
			b.hist.expire(b.opts.Now())
			b.mu.Unlock()
			continue
		case <-calmC:
			calmC = nil
			if again := b.caughtUp(); again > 0 {
				calm.Reset(again)
				calmC = calm.C
			}
			continue
		case <-b.quit:
			return
		}
		for {
			b.mu.Lock()
			steps, b.outbox = b.outbox, steps[:0]
			b.signalRoomLocked()
			behind := b.behind
			b.mu.Unlock()
			if len(steps) == 0 {
				if behind && calmC == nil {
					if calm == nil {
						calm = time.NewTimer(calmAfter)
					} else {
						calm.Reset(calmAfter)
					}
					calmC = calm.C
				}
				break
			}
			for i, st := range steps {
				switch {
				case st.join != nil:
					b.route(st.join)
				case st.leave != nil:
					b.unroute(st.leave)
				default:
					// A mark counts before its event: a join that carries the mark of a
					// stream's arrival is that stream's own.
					b.marked = max(b.marked, st.ev.mark)
					if st.ev.markOnly() {
						break
					}
					if !b.awaitRoom() {
						return
					}
					b.fanout(st.ev)
				}
				steps[i] = step{}
			}
		}
	}
}

// route starts sending s the events it follows.
func (b *Broker) route(s *Subscription) {
	b.all.add(s)
	for _, t := range s.topics {
		subs := b.byTopic[t]
		if subs == nil {
			subs = &roster{}
			b.byTopic[t] = subs
		}
		subs.add(s)
	}
}

// unroute stops sending s anything.
func (b *Broker) unroute(s *Subscription) {
	b.all.remove(s)
	for _, t := range s.topics {
		if subs := b.byTopic[t]; subs != nil {
			subs.remove(s)
			if subs.len() == 0 {
				delete(b.byTopic, t)
			}
		}
	}
}

// fanout queues ev for every subscriber that follows its topic. Subscribers whose queue
// is full while their connection is blocked are cut off, and their departure announced in
// turn; those whose queue is full otherwise are waited for before the next event
// (awaitRoom).
func (b *Broker) fanout(ev *Event) {
	subs := &b.all
	if ev.Topic != "" {
		if subs = b.byTopic[ev.Topic]; subs == nil {
			return
		}
	}
	b.slow = b.slow[:0]
	for _, s := range subs.subs {
		switch s.push(ev) {
		case pushedFull:
			b.full = append(b.full, s)
		case pushedSlow:
			b.slow = append(b.slow, s)
		}
	}
	b.stats.deliveries.Add(uint64(subs.len() - len(b.slow)))
	if len(b.slow) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, s := range b.slow {
		b.unroute(s)
		b.stats.cutoff.Add(1)
		b.removeLocked(s)
		b.slow[i] = nil
	}
}
