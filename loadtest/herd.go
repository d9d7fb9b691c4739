package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Names of the events the herd scenario publishes: the one its clients missed while
// away, which each must get from history, and the one that tells a stream is live.
const (
	herdMissedEvent = "herd_replay"
	herdLiveEvent   = "herd_live"
)

// herd is the arrival of a stopped node's clients at the others: -streams clients
// arrive evenly within -arrive, each resuming with the Last-Event-ID of an event seen
// before it left (server: presence on, history on). Every one must get, from history,
// the event published since, then live events, without missed and without being cut
// off; it measures the time until every stream is live and until every stream has seen
// every new_user it should.
func (r *runner) herd(ctx context.Context) (res result, err error) {
	res = result{Scenario: "herd", ServerCPU: -1}
	n := r.o.streams
	pb := &publisher{c: r.c, topic: r.o.topic}
	defer pb.close()
	seen, err := pb.publishNamed(herdLiveEvent)
	if err != nil {
		return res, fmt.Errorf("publishing the event the clients saw last: %v", err)
	}
	if _, err := pb.publishNamed(herdMissedEvent); err != nil {
		return res, fmt.Errorf("publishing the event the clients missed: %v", err)
	}

	p := newPool(r.c, r.o.topic, r.o.bufSize, r.loops)
	p.resumeFrom(r.o.topic, seen)
	p.gap = r.o.arrive / time.Duration(max(n, 1))
	// crier holds arrivals back until its writers can take them (like a browser's
	// EventSource, a client waits as long as that takes): only the run's limit bounds it.
	p.opening = r.o.timeout
	defer func() {
		res.fillStreams(p) // before closing: the tool's own closes are not the server's
		p.closeAll()
	}()
	ph := newPhase()
	ph.presenceWant = int64(n) * int64(n+1) / 2
	ph.liveWant = int64(n)
	p.phase.Store(ph)
	r.logf("%d clients arriving within %s, each resuming after id %s; expecting %d new_user deliveries",
		n, r.o.arrive, seen, ph.presenceWant)
	ctx, cancel := context.WithTimeout(ctx, r.o.timeout)
	defer cancel()
	cpu := startCPU(r.pid)
	t0 := time.Now()
	opened := p.add(ctx, n, max(r.o.concurrency, n))
	openSecs := time.Since(t0).Seconds()
	r.logf("%d of %d streams open after %.3fs", opened, n, openSecs)
	if _, err := pb.publishNamed(herdLiveEvent); err != nil {
		return res, fmt.Errorf("publishing the live event: %v", err)
	}
	// Wait until every stream is live and has every new_user; give up early when nothing
	// arrives for 10 s.
	progress := func() int64 { return ph.live.Load() + ph.presence.Load() }
	last, lastChange := int64(-1), time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for ph.live.Load() < ph.liveWant || ph.presence.Load() < ph.presenceWant {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
		if got := progress(); got != last {
			last, lastChange = got, time.Now()
		} else if time.Since(lastChange) > 10*time.Second {
			break
		}
	}
	r.cpuNote(cpu)
	res.ServerCPU, res.ToolCPU = r.serverCPU, r.toolCPU
	res.ServerCPUSeconds, res.ToolCPUSeconds = r.serverSecs, r.toolSecs
	res.Streams = int64(opened)
	res.ArrivalSeconds = round3(r.o.arrive.Seconds())
	res.OpenSeconds = round3(openSecs)
	res.Resumed, res.Missed, res.Live = ph.resumed.Load(), ph.missed.Load(), ph.live.Load()
	res.Deliveries, res.PresenceExpected = ph.presence.Load(), ph.presenceWant
	res.PresenceIncomplete = ph.presence.Load() < ph.presenceWant
	res.IDRegressions = ph.idBack.Load()
	if at := ph.liveAt.Load(); ph.live.Load() >= ph.liveWant {
		res.LiveSeconds = round3(time.Duration(at - t0.UnixNano()).Seconds())
	}
	if at := ph.presenceAt.Load(); !res.PresenceIncomplete {
		res.PresenceSeconds = round3(time.Duration(at - t0.UnixNano()).Seconds())
	}
	r.logf("resumed %d, missed %d, live %d of %d (all live after %.3fs); new_user %d of %d (all after %.3fs)",
		res.Resumed, res.Missed, res.Live, n, res.LiveSeconds, res.Deliveries, res.PresenceExpected, res.PresenceSeconds)
	switch {
	case opened < n:
		return res, fmt.Errorf("only %d of %d streams opened: %v", opened, n, p.err())
	case res.Live < int64(n) || res.PresenceIncomplete:
		return res, fmt.Errorf("%d of %d streams live, %d of %d new_user deliveries (gave up after -timeout %s or 10s without progress)",
			res.Live, n, res.Deliveries, res.PresenceExpected, r.o.timeout)
	}
	return res, nil
}

// publishNamed publishes one event named name with no data to speak of, and returns its id.
func (pb *publisher) publishNamed(name string) (string, error) {
	pb.body = append(pb.body[:0], `{"event":`...)
	pb.body = strconv.AppendQuote(pb.body, name)
	if pb.topic != "" {
		pb.body = append(pb.body, `,"topic":`...)
		pb.body = strconv.AppendQuote(pb.body, pb.topic)
	}
	pb.body = append(pb.body, `,"data":1}`...)
	status, resp, err := pb.post(pb.body)
	if err != nil {
		return "", err
	}
	if status != 200 {
		return "", fmt.Errorf("status %d: %s", status, truncate(resp))
	}
	var out struct{ ID string }
	if err := json.Unmarshal(resp, &out); err != nil || out.ID == "" {
		return "", fmt.Errorf("no id in %s", truncate(resp))
	}
	return out.ID, nil
}
