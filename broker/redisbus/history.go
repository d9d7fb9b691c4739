package redisbus

import (
	"cmp"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crierhq/crier/broker"
)

// A replay reads each topic's history in pages, outside any script, so that no single
// call holds Redis for long: at most pageEvents entries and, once the entries' size is
// known, about pageBytes.
const (
	pageEvents = 500
	pageBytes  = 1 << 20
)

// historyArgs are the first five arguments of the scripts that keep history.
func (bus *Bus) historyArgs() []any {
	return []any{bus.opts.Prefix, bus.opts.Slack, max(bus.opts.History, 0),
		bus.opts.HistoryTTL.Microseconds(), bus.opts.HistoryMemory}
}

// Replay reads the retained events of topics and broadcasts after an id; see broker.Bus.
func (bus *Bus) Replay(ctx context.Context, after uint64, topics []string) (broker.Replay, error) {
	all := append([]string{""}, topics...)
	head, err := bus.rdb.Get(ctx, bus.opts.Prefix+"last").Result()
	if err != nil && err != redis.Nil {
		return broker.Replay{}, fmt.Errorf("redisbus: replay: %w", err)
	}
	var rp broker.Replay
	rp.Head, _ = broker.ParseID(head)
	for _, t := range all {
		evs, err := bus.read(ctx, t, after, 0)
		if err != nil {
			return broker.Replay{}, err
		}
		rp.Events = append(rp.Events, evs...)
	}
	slices.SortFunc(rp.Events, func(a, b *broker.Event) int { return cmp.Compare(a.ID, b.ID) })
	// Floors are read after the events: an event that left while the pages were read
	// raises its topic's floor, so that the loss is reported.
	if rp.Floor, err = bus.floor(ctx, all); err != nil {
		return broker.Replay{}, err
	}
	rp.Events, rp.Floor = bus.unexpired(rp.Events, rp.Floor)
	return rp, nil
}

// History reads one topic's retained events; see broker.Bus.
func (bus *Bus) History(ctx context.Context, topic string, after uint64, limit int) (broker.Page, error) {
	evs, err := bus.read(ctx, topic, after, limit)
	if err != nil {
		return broker.Page{}, err
	}
	floor, err := bus.floor(ctx, []string{topic})
	if err != nil {
		return broker.Page{}, err
	}
	evs, floor = bus.unexpired(evs, floor)
	if evs == nil {
		evs = []*broker.Event{}
	}
	return broker.Page{Events: evs, Missed: after > 0 && after < floor}, nil
}

// unexpired drops the events that the TTL has aged out although no trim has removed
// them yet, raising floor past them.
func (bus *Bus) unexpired(evs []*broker.Event, floor uint64) ([]*broker.Event, uint64) {
	if bus.opts.HistoryTTL <= 0 {
		return evs, floor
	}
	cutoff := uint64(time.Now().Add(-bus.opts.HistoryTTL).UnixMicro())
	return slices.DeleteFunc(evs, func(ev *broker.Event) bool {
		if ev.ID < cutoff {
			floor = max(floor, ev.ID)
			return true
		}
		return false
	}), floor
}

// read returns up to limit (0: all) retained events of topic after an id, a page at a
// time.
func (bus *Bus) read(ctx context.Context, topic string, after uint64, limit int) ([]*broker.Event, error) {
	key := bus.opts.Prefix + "h:" + topic
	var out []*broker.Event
	count := pageEvents
	for limit <= 0 || len(out) < limit {
		if limit > 0 {
			count = min(count, limit-len(out))
		}
		msgs, err := bus.rdb.XRangeN(ctx, key, "("+broker.FormatID(after)+"-0", "+", int64(count)).Result()
		if err != nil {
			return nil, fmt.Errorf("redisbus: read history: %w", err)
		}
		size := 0
		for _, msg := range msgs {
			ev := historyEvent(topic, msg)
			if ev == nil {
				continue
			}
			size += len(ev.Data)
			out = append(out, ev)
		}
		if len(msgs) < count {
			break
		}
		after, _ = entryID(msgs[len(msgs)-1].ID)
		// The next page holds about pageBytes of entries like these.
		count = min(pageEvents, max(1, pageBytes*len(msgs)/max(size, 1)))
	}
	return out, nil
}

// historyEvent turns an entry of a topic's history into its event; nil if malformed.
func historyEvent(topic string, msg redis.XMessage) *broker.Event {
	id, ok := entryID(msg.ID)
	if !ok {
		return nil
	}
	str := func(k string) string { s, _ := msg.Values[k].(string); return s }
	return &broker.Event{ID: id, Topic: topic, Name: str("e"), Data: []byte(str("d")),
		Text: str("x") == "1", Time: time.UnixMicro(int64(id))}
}

// floor returns the highest floor among topics: the newest id one of them no longer
// retains, or from before this Redis' history began.
func (bus *Bus) floor(ctx context.Context, topics []string) (uint64, error) {
	p := bus.opts.Prefix
	pipe := bus.rdb.Pipeline()
	start := pipe.Get(ctx, p+"floor")
	type cmds struct {
		floor  *redis.StringCmd
		exists *redis.IntCmd
		gone   *redis.SliceCmd
	}
	per := make([]cmds, len(topics))
	for i, t := range topics {
		a, b := sketchCells(t)
		per[i] = cmds{pipe.HGet(ctx, p+"floors", t), pipe.Exists(ctx, p+"h:"+t), pipe.HMGet(ctx, p+"gone", a, b)}
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return 0, fmt.Errorf("redisbus: read floors: %w", err)
	}
	f, _ := broker.ParseID(start.Val())
	for _, c := range per {
		own, _ := broker.ParseID(c.floor.Val())
		f = max(f, own)
		if c.exists.Val() == 0 {
			// A forgotten topic: what the sketch remembers (see the scripts' created).
			cells := c.gone.Val()
			lo := uint64(0)
			for i, v := range cells {
				s, _ := v.(string)
				n, _ := strconv.ParseUint(s, 10, 64)
				if i == 0 || n < lo {
					lo = n
				}
			}
			f = max(f, lo)
		}
	}
	return f, nil
}

// sketchCells names the two cells of the gone hash for topic, as the scripts' sketch
// does: the first three and the next three hex digits of the topic's SHA-1.
func sketchCells(topic string) (string, string) {
	sum := sha1.Sum([]byte(topic))
	h := hex.EncodeToString(sum[:3])
	a, _ := strconv.ParseUint(h[:3], 16, 16)
	b, _ := strconv.ParseUint(h[3:6], 16, 16)
	return "0:" + strconv.FormatUint(a, 10), "1:" + strconv.FormatUint(b, 10)
}

// trimEvery is how often a node evicts what aged out of history while nothing is
// published (publishes evict as they go).
func (bus *Bus) trimEvery() time.Duration {
	if ttl := bus.opts.HistoryTTL; ttl > 0 {
		return min(max(ttl/8, 10*time.Millisecond), time.Second)
	}
	return 5 * time.Second
}

// trimBudget bounds the evictions of one trim call.
const trimBudget = 500

// keepHistory evicts aged-out events until ctx is done.
func (bus *Bus) keepHistory(ctx context.Context) {
	if bus.opts.History <= 0 {
		return
	}
	tick := time.NewTicker(bus.trimEvery())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for ctx.Err() == nil {
			more, err := trimScript.Run(ctx, bus.rdb, nil, append(bus.historyArgs(), trimBudget)...).Int()
			if err != nil || more == 0 {
				break // the reader reports an unreachable Redis
			}
		}
	}
}
