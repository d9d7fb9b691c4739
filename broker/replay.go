package broker

import (
	"context"
	"strings"
)

// A herd of clients resuming at once (after a node restarts, say) mostly asks for the
// same thing: the events after one id on the same topics. One read of the Bus serves
// every such resume that arrives while it is under way or waiting for its turn, and its
// events are encoded once and shared, as live events are. At most replaySlots reads run
// at once, so that a herd queues here rather than in the Bus's connection pool.

// replaySlots is how many reads of the Bus run at once.
const replaySlots = 8

// replayFlight is one read of the Bus that concurrent resumes share.
type replayFlight struct {
	done chan struct{} // closed when rp and err are set
	rp   Replay
	err  error
}

// sharedReplay returns what the Bus holds after id on topics for a subscription
// registered while seen was the newest delivered id, joining a read of the same that is
// under way. A read whose head is below seen began too early for this subscription: the
// events between would reach it neither from the read nor live, so it reads again.
func (b *Broker) sharedReplay(ctx context.Context, id uint64, topics []string, seen uint64) (Replay, error) {
	key := FormatID(id) + "\x00" + strings.Join(topics, "\x00")
	b.mu.Lock()
	f, joined := b.flights[key]
	if !joined {
		f = &replayFlight{done: make(chan struct{})}
		if b.flights == nil {
			b.flights = make(map[string]*replayFlight)
		}
		b.flights[key] = f
	}
	b.mu.Unlock()
	if joined {
		select {
		case <-f.done:
		case <-ctx.Done():
			return Replay{}, ctx.Err()
		}
		if f.err != nil || f.rp.Head < seen {
			return b.sharedReplay(ctx, id, topics, seen)
		}
		return f.rp, nil
	}
	select {
	case b.replaying <- struct{}{}:
		f.rp, f.err = b.readReplay(ctx, id, topics)
		<-b.replaying
	case <-ctx.Done():
		f.err = ctx.Err()
	}
	b.mu.Lock()
	delete(b.flights, key)
	b.mu.Unlock()
	close(f.done)
	return f.rp, f.err
}

// readReplay reads the Bus and makes its events ready to share: retained, and encoded.
func (b *Broker) readReplay(ctx context.Context, id uint64, topics []string) (Replay, error) {
	rp, err := b.opts.Bus.Replay(ctx, id, topics)
	for _, ev := range rp.Events {
		ev.retained = true
		ev.wire = b.encode(ev)
	}
	return rp, err
}
