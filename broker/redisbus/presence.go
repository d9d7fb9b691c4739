package redisbus

import (
	"context"
	"time"
)

// opsPerCall bounds the joins and leaves sent in one script call, so that a burst of
// arrivals does not hold Redis for long.
const opsPerCall = 256

// keepPresence is the presence worker: it sends this node's joins and leaves in order,
// beats so that the node counts, and reaps nodes that stopped beating. Joins and leaves
// that cannot be sent (Redis is down) are dropped, and the node's members are replaced
// with the subscribers it really has once Redis is back: the counts are right again,
// though the arrivals and departures of the outage were not announced.
func (bus *Bus) keepPresence(ctx context.Context, b Feed) {
	tick := time.NewTicker(bus.opts.Beat)
	defer tick.Stop()
	ttl := bus.opts.NodeTTL.Microseconds()
	var healthy time.Time // since when every call has succeeded; zero after a failure
	resync := false
	// Nothing is sent before the reader knows where it starts: an entry appended before
	// that would be behind it, and the streams that opened meanwhile would never hear
	// their own new_user or join.
	select {
	case <-ctx.Done():
		return
	case <-bus.begun:
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-bus.wake:
		}
		bus.mu.Lock()
		ops := bus.ops
		bus.ops = nil
		bus.mu.Unlock()

		fail := func(err error) {
			if !healthy.IsZero() {
				bus.log.Warn("presence not sent; the cluster count will be corrected once redis is back", "err", err)
			}
			healthy, resync = time.Time{}, true
		}
		if resync {
			args := []any{bus.opts.Prefix, bus.opts.Slack, bus.node, ttl}
			for _, id := range b.SubscriberIDs() {
				args = append(args, id)
			}
			if err := resyncScript.Run(ctx, bus.rdb, nil, args...).Err(); err != nil {
				fail(err)
				continue
			}
			var err error
			if ops, err = bus.resyncRooms(ctx, b, ops); err != nil {
				fail(err)
				continue
			}
			resync = false
		}
		// A node reaps others only after beating for a whole TTL itself: after an outage
		// every node needs time to beat again before it counts as dead.
		reap := !healthy.IsZero() && time.Since(healthy) >= bus.opts.NodeTTL
		for first := true; first || len(ops) > 0; first = false {
			n := min(len(ops), opsPerCall)
			args := []any{bus.opts.Prefix, bus.opts.Slack, bus.node, ttl, boolArg(reap)}
			for _, op := range ops[:n] {
				args = append(args, string(op.kind), op.id)
				if op.kind == 'r' {
					args = append(args, op.topic, op.n, op.mark)
				}
			}
			ops = ops[n:]
			fresh, err := announceScript.Run(ctx, bus.rdb, nil, args...).Int()
			if err != nil {
				fail(err)
				break
			}
			if healthy.IsZero() {
				healthy = time.Now()
			}
			if fresh == 1 {
				// Redis did not know this node: it is new, or was reaped, or Redis lost
				// its state. Tell it who is here.
				resync = true
				select {
				case bus.wake <- struct{}{}:
				default:
				}
			}
		}
	}
}

func boolArg(v bool) string {
	if v {
		return "1"
	}
	return "0"
}
