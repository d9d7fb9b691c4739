package redisbus

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crierhq/crier/broker"
)

// readBatch is how many entries one read takes from the stream.
const readBatch = 1000

// follow follows the log from its newest entry at start-up and hands every event to b, in
// order, until ctx is done. While Redis is down it retries with backoff, then carries on
// from the last entry it read, so nothing is skipped. Each entry names the one before
// it: when that is not the last entry read, entries went missing (trimmed before this
// reader got to them, or lost by Redis), and the broker is told.
func (bus *Bus) follow(ctx context.Context, b Feed) {
	stream := bus.opts.Prefix + "log"
	var last string // id of the last entry handed over, without "-0"
	retry := backoff{}
	for {
		head, err := bus.rdb.Get(ctx, bus.opts.Prefix+"last").Result()
		if errors.Is(err, redis.Nil) {
			head, err = "0", nil
		}
		if err == nil {
			last = head
			break
		}
		if !bus.failed(ctx, err, &retry) {
			return
		}
	}
	start, _ := broker.ParseID(last)
	b.Begin(start)
	close(bus.begun)
	bus.connected()

	var evs []*broker.Event
	for ctx.Err() == nil {
		res, err := bus.tail.XRead(ctx, &redis.XReadArgs{
			Streams: []string{stream, last + "-0"},
			Count:   readBatch,
			Block:   2 * time.Second,
		}).Result()
		if errors.Is(err, redis.Nil) {
			bus.connected()
			continue // nothing new within the block time
		}
		if err != nil {
			if !bus.failed(ctx, err, &retry) {
				return
			}
			continue
		}
		bus.connected()
		retry = backoff{}
		evs = evs[:0]
		for _, s := range res {
			for _, msg := range s.Messages {
				before, _ := msg.Values["b"].(string)
				if before != last {
					b.Deliver(evs...)
					clear(evs)
					evs = evs[:0]
					next, _ := entryID(msg.ID)
					bus.log.Warn("entries of the log were lost before this node read them; its streams get a missed event and stay open",
						"after", last, "next", msg.ID)
					b.Lost(next)
				}
				last, _, _ = strings.Cut(msg.ID, "-")
				if ev := toEvent(msg.ID, msg.Values, bus.node); ev != nil {
					evs = append(evs, ev)
				}
			}
		}
		b.Deliver(evs...)
		clear(evs)
		if entries(res) > 1 {
			// A log that had several entries at once is busy: let the next ones gather,
			// so that it costs Redis one read per pause rather than one per publish. A
			// quiet log (one entry at a time) is read at once.
			select {
			case <-ctx.Done():
			case <-time.After(readPause):
			}
		}
	}
}

// readPause is how long the reader waits after a read that found several entries. It
// adds at most that much to delivery while the log is busy, and saves Redis round trips
// (BENCHMARKS.md).
const readPause = time.Millisecond

func entries(res []redis.XStream) int {
	n := 0
	for _, s := range res {
		n += len(s.Messages)
	}
	return n
}

// connected records that Redis answered.
func (bus *Bus) connected() {
	if !bus.up.Swap(true) {
		bus.log.Info("redis reachable; this node is part of the cluster", "node", bus.node)
	}
}

// failed records a failed call and waits before the next; it reports false when ctx is
// done.
func (bus *Bus) failed(ctx context.Context, err error, retry *backoff) bool {
	if ctx.Err() != nil {
		return false
	}
	if bus.up.Swap(false) || retry.n == 0 {
		bus.log.Warn("redis unreachable; publishing answers 503 until it is back", "err", err)
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(retry.next()):
		return true
	}
}

// backoff doubles a delay from 50ms up to 2s.
type backoff struct{ n int }

func (r *backoff) next() time.Duration {
	d := 50 * time.Millisecond << min(r.n, 6)
	r.n++
	return min(d, 2*time.Second)
}
