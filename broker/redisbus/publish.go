package redisbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crierhq/crier/broker"
)

// Publishes that arrive while a script call is under way wait for the next call and go
// together: one call, one round trip and one read of the newest id for the whole batch,
// which is most of what a publish cost Redis when each had a call of its own.
//
// A call costs Redis more than the events in it, so batches should be large; but only
// what arrived during the previous call is queued when it returns, a publish or two at
// moderate rates. So when the previous batch held several publishes (publishers are
// busy), the next call waits, for at most batchLinger, until as many are queued again:
// a batch size that publishers sustain is kept, and a quiet bus (batches of one) never
// waits.
const (
	batchEvents = 128     // events per call at most
	batchBytes  = 4 << 20 // data per call at most, unless one event is larger
	batchLinger = time.Millisecond
)

// Bytes counted against Options.HistoryMemory, an estimate of what Redis spends: each
// event's data, name and key plus its entry in the topic's stream, and for each topic
// with retained events its stream, its place in the eviction order and its floor.
const (
	entryBytes    = 48
	topicBytesLua = "400" // plus three times the topic's length, in the script
)

// pending is a publish waiting for its batch's answer.
type pending struct {
	m    broker.Message
	done chan struct{}
	r    broker.Receipt
	err  error
}

// errStopped answers publishes that the bus could not send before it closed.
var errStopped = errors.New("redisbus: closed")

// Publish appends m to the log, with the publishes that arrive meanwhile; see
// broker.Bus. Start must have been called.
func (bus *Bus) Publish(ctx context.Context, m broker.Message) (broker.Receipt, error) {
	p := &pending{m: m, done: make(chan struct{})}
	bus.pmu.Lock()
	if bus.pstop {
		bus.pmu.Unlock()
		return broker.Receipt{}, errStopped
	}
	bus.pqueue = append(bus.pqueue, p)
	bus.pmu.Unlock()
	select {
	case bus.pwake <- struct{}{}:
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	select {
	case <-p.done:
		return p.r, p.err
	case <-ctx.Done():
		// The event may still be appended: the publisher retries with its key.
		return broker.Receipt{}, fmt.Errorf("redisbus: publish: %w", ctx.Err())
	}
}

// publishLoop sends what Publish queued, a batch per script call, until ctx is done;
// then it answers whatever is left with errStopped.
func (bus *Bus) publishLoop(ctx context.Context) {
	defer func() {
		bus.pmu.Lock()
		left := bus.pqueue
		bus.pqueue, bus.pstop = nil, true
		bus.pmu.Unlock()
		for _, p := range left {
			p.err = errStopped
			close(p.done)
		}
	}()
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	last := 0 // publishes in the previous batch
	for {
		select {
		case <-ctx.Done():
			return
		case <-bus.pwake:
		}
		for ctx.Err() == nil {
			if last > 1 {
				bus.gather(ctx, linger, last)
			}
			batch := bus.takeBatch()
			if len(batch) == 0 {
				last = 0
				break
			}
			last = len(batch)
			bus.send(ctx, batch)
		}
	}
}

// gather waits until n publishes are queued, for at most batchLinger.
func (bus *Bus) gather(ctx context.Context, linger *time.Timer, n int) {
	linger.Reset(batchLinger)
	defer linger.Stop()
	for bus.queued() < n {
		select {
		case <-ctx.Done():
			return
		case <-linger.C:
			return
		case <-bus.pwake:
		}
	}
}

func (bus *Bus) queued() int {
	bus.pmu.Lock()
	defer bus.pmu.Unlock()
	return len(bus.pqueue)
}

// takeBatch takes the oldest queued publishes, within batchEvents and batchBytes.
func (bus *Bus) takeBatch() []*pending {
	bus.pmu.Lock()
	defer bus.pmu.Unlock()
	n, size := 0, 0
	for n < len(bus.pqueue) && n < batchEvents {
		size += len(bus.pqueue[n].m.Data)
		if n > 0 && size > batchBytes {
			break
		}
		n++
	}
	batch := bus.pqueue[:n:n]
	bus.pqueue = bus.pqueue[n:]
	if len(bus.pqueue) == 0 {
		bus.pqueue = nil
	}
	return batch
}

// send runs the publish script for a batch and answers each of its publishes.
func (bus *Bus) send(ctx context.Context, batch []*pending) {
	args := append(bus.historyArgs(), make([]any, 0, 6*len(batch))...)
	for _, p := range batch {
		m := p.m
		key := ""
		if m.Key != "" {
			key = m.Publisher + "\n" + m.Key // keys belong to their publisher
		}
		size := len(m.Data) + len(m.Name) + len(key) + entryBytes
		args = append(args, m.Topic, m.Name, m.Data, key, textArg(m.Text), size)
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	res, err := publishScript.Run(ctx, bus.rdb, nil, args...).Slice()
	cancel()
	if err == nil && len(res) != len(batch) {
		err = fmt.Errorf("%d answers for %d events", len(res), len(batch))
	}
	for i, p := range batch {
		if err != nil {
			p.err = fmt.Errorf("redisbus: publish: %w", err)
		} else {
			p.r, p.err = receipt(res[i])
		}
		close(p.done)
	}
}

// receipt reads one event's {id, status} answer.
func receipt(v any) (broker.Receipt, error) {
	pair, _ := v.([]any)
	if len(pair) != 2 {
		return broker.Receipt{}, fmt.Errorf("redisbus: publish: unexpected answer %v", v)
	}
	id, ok := broker.ParseID(fmt.Sprint(pair[0]))
	if !ok {
		return broker.Receipt{}, fmt.Errorf("redisbus: publish: bad id %v", pair[0])
	}
	switch status, _ := pair[1].(int64); status {
	case 1:
		return broker.Receipt{ID: id, Duplicate: true}, nil
	case 2:
		return broker.Receipt{}, broker.ErrKeyConflict
	}
	return broker.Receipt{ID: id}, nil
}

func textArg(text bool) string {
	if text {
		return "1"
	}
	return ""
}
