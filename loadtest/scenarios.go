package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"time"
)

// runner carries what every scenario needs.
type runner struct {
	o      options
	c      *client
	pid    int     // the server's, 0 when unknown
	loops  []*loop // the epoll engine's event loops; nil for a goroutine per stream
	stderr io.Writer
	start  time.Time

	// CPU use over the last measured interval, as shares of one core (-1: unknown).
	serverCPU, toolCPU   float64
	serverSecs, toolSecs float64
}

// close stops the event loops; every pool must be closed first.
func (r *runner) close() {
	for _, l := range r.loops {
		l.stop()
	}
	r.loops = nil
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.stderr, "[%6.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *runner) rss() int64 {
	if r.pid == 0 {
		return 0
	}
	kib, err := rssKiB(r.pid)
	if err != nil {
		r.logf("reading the server's RSS: %v", err)
		return 0
	}
	return kib
}

// openStreams opens n streams in p and logs how it went.
func (r *runner) openStreams(ctx context.Context, p *pool, n int) (time.Duration, error) {
	t0 := time.Now()
	opened := p.add(ctx, n, r.o.concurrency)
	took := time.Since(t0)
	r.logf("opened %d/%d streams in %.2fs (%.0f/s)", opened, n, took.Seconds(), float64(opened)/took.Seconds())
	if opened < n {
		err := p.err()
		r.logf("%d failed, %d refused with 503; first error: %v", p.failed.Load(), p.refused.Load(), err)
		if opened == 0 {
			return took, fmt.Errorf("no stream opened: %v", err)
		}
	}
	return took, nil
}

// idle measures the server's memory per open stream.
func (r *runner) idle(ctx context.Context) (result, error) {
	res := result{Scenario: "idle"}
	p := newPool(r.c, r.o.topic, r.o.bufSize, r.loops)
	defer p.closeAll()
	before := r.rss()
	cpu := startCPU(r.pid)
	took, err := r.openStreams(ctx, p, r.o.streams)
	res.OpenSeconds = round3(took.Seconds())
	if err != nil {
		return res, err
	}
	r.logf("settling for %s", r.o.settle)
	sleepCtx(ctx, r.o.settle)
	after := r.rss()
	r.cpuNote(cpu)
	res.ServerCPU, res.ToolCPU = r.serverCPU, r.toolCPU
	res.ServerCPUSeconds, res.ToolCPUSeconds = r.serverSecs, r.toolSecs
	res.Streams = p.open.Load()
	res.RSSBeforeKiB, res.RSSAfterKiB = before, after
	if before > 0 && after > 0 && res.Streams > 0 {
		res.KiBPerStream = round3(float64(after-before) / float64(res.Streams))
		r.logf("server RSS %d KiB -> %d KiB: %.2f KiB per stream", before, after, res.KiBPerStream)
	} else {
		r.logf("server RSS unknown (pass -pid)")
	}
	res.fillStreams(p)
	return res, nil
}

// load opens the streams, publishes for the duration at the rate (0: as fast as the
// window allows), waits for the last deliveries and reports.
func (r *runner) load(ctx context.Context, name string) (result, error) {
	res := result{Scenario: name}
	p := newPool(r.c, r.o.topic, r.o.bufSize, r.loops)
	defer p.closeAll()
	if _, err := r.openStreams(ctx, p, r.o.streams); err != nil {
		res.fillStreams(p)
		return res, err
	}
	sleepCtx(ctx, r.o.settle)
	ph := r.measure(ctx, p, r.o.rate)
	res.fillLoad(ph, p)
	res.ServerCPU, res.ToolCPU = r.serverCPU, r.toolCPU
	res.ServerCPUSeconds, res.ToolCPUSeconds = r.serverSecs, r.toolSecs
	return res, nil
}

// measure runs one publishing phase over the streams of p.
func (r *runner) measure(ctx context.Context, p *pool, rate float64) *phase {
	ph := newPhase()
	ph.track(p)
	ph.open = r.o.openLoop
	if rate <= 0 && r.o.window > 0 {
		ph.win = newWindow(r.o.window, r.o.publishers, &p.open)
	}
	p.phase.Store(ph)
	switch {
	case rate > 0:
		r.logf("publishing %.0f events/s of %d bytes to %d streams for %s with %d publisher(s)",
			rate, r.o.size, ph.streams, r.o.duration, r.o.publishers)
	case ph.win == nil:
		r.logf("publishing back to back, no window, to %d streams for %s with %d publishers",
			ph.streams, r.o.duration, r.o.publishers)
	default:
		r.logf("publishing as fast as the server delivers (window %d per publisher) to %d streams for %s with %d publishers",
			ph.win.size, ph.streams, r.o.duration, r.o.publishers)
	}
	cpu := startCPU(r.pid)
	publishLoad(ctx, r.c, ph, r.o.publishers, rate, r.o.duration, r.o.size, r.o.topic)
	ph.drain(ctx, p, r.o.drain)
	r.cpuNote(cpu)
	s := ph.lat.summary()
	pubSecs := time.Duration(ph.pubEnd.Load() - ph.pubStart.Load()).Seconds()
	r.logf("published %d (%.0f/s, %d errors), delivered %d of %d, lost %d, duplicates %d; latency p50 %.2f ms p99 %.2f ms max %.2f ms",
		ph.published.Load(), float64(ph.published.Load())/pubSecs, ph.pubErrors.Load(), ph.unique.Load()+ph.dups.Load(), ph.expected(),
		max(0, ph.expected()-ph.unique.Load()), ph.dups.Load(), s.p50, s.p99, s.max)
	if n := ph.refused.Load(); n > 0 || ph.open {
		r.logf("refused with 503: %d; offered %d, unsent (due while a publisher waited) %d", n, ph.offered.Load(), ph.unsent.Load())
	}
	if ph.firstErr != "" {
		r.logf("first publish error: %s", ph.firstErr)
	}
	if d := p.dropped.Load(); d > 0 {
		r.logf("%d streams were ended by the server; first: %v", d, p.err())
	}
	if ph.unique.Load() < ph.expected() {
		r.logf("of the lost deliveries, %d were owed to streams still open", ph.owed(p))
	}
	return ph
}

// cpuNote stops the meter, keeps its figures for the result and logs them.
func (r *runner) cpuNote(m *cpuMeter) {
	server, tool := m.stop()
	r.serverCPU, r.toolCPU = round3(server), round3(tool)
	r.serverSecs, r.toolSecs = round3(m.serverSecs), round3(m.toolSecs)
	if server >= 0 {
		r.logf("CPU: server %.0f%%, tool %.0f%% of one core", 100*server, 100*tool)
	} else {
		r.logf("CPU: tool %.0f%% of one core (server unknown)", 100*tool)
	}
	if tool > 0.9 {
		r.logf("warning: the tool used most of a core; figures may be the tool's limit, not the server's")
	}
}

// presence attaches streams one after another, then in batches, and measures how long
// it takes until every stream has seen the new_user event (or, with -event join and a
// room as -topic, the join) of every attach after its own.
func (r *runner) presence(ctx context.Context) (result, error) {
	res := result{Scenario: "presence", ServerCPU: -1}
	if n := r.o.sequential; n > 0 {
		secs, got, want, err := r.attachStorm(ctx, n, 1, &res)
		res.SequentialAttaches, res.SequentialSeconds, res.SequentialDeliveries = int64(n), round3(secs), got
		res.PresenceExpected += want
		res.PresenceIncomplete = res.PresenceIncomplete || got < want
		if err != nil {
			return res, err
		}
		sleepCtx(ctx, r.o.settle)
	}
	if n := r.o.streams; n > 0 {
		secs, got, want, err := r.attachStorm(ctx, n, r.o.batch, &res)
		res.BatchedAttaches, res.Batch, res.BatchedSeconds, res.BatchedDeliveries = int64(n), int64(r.o.batch), round3(secs), got
		res.PresenceExpected += want
		res.PresenceIncomplete = res.PresenceIncomplete || got < want
		if err != nil {
			return res, err
		}
	}
	res.Streams = int64(max(r.o.sequential, r.o.streams))
	res.Deliveries = res.SequentialDeliveries + res.BatchedDeliveries
	res.ServerCPU, res.ToolCPU = r.serverCPU, r.toolCPU
	res.ServerCPUSeconds, res.ToolCPUSeconds = r.serverSecs, r.toolSecs
	return res, nil
}

// attachStorm opens n streams, batch at a time, each batch once the previous one is
// open. The i-th stream to attach (from 1) sees the attaches i..n: n(n+1)/2 new_user
// deliveries in all, whatever the order within a batch.
func (r *runner) attachStorm(ctx context.Context, n, batch int, res *result) (secs float64, got, want int64, err error) {
	p := newPool(r.c, r.o.topic, r.o.bufSize, r.loops)
	defer func() {
		p.closeAll()
		res.FailedStreams += p.failed.Load()
		res.RefusedStreams += p.refused.Load()
		res.DroppedStreams += p.dropped.Load()
	}()
	ph := newPhase()
	want = int64(n) * int64(n+1) / 2
	ph.presenceWant = want
	name := cmp.Or(r.o.presenceEvent, "new_user")
	ph.presenceName = name
	p.phase.Store(ph)
	batch = max(batch, 1)
	r.logf("attaching %d streams, %d at a time; expecting %d %s deliveries", n, batch, want, name)
	ctx, cancel := context.WithTimeout(ctx, r.o.timeout)
	defer cancel()
	cpu := startCPU(r.pid)
	t0 := time.Now()
	for opened := 0; opened < n && ctx.Err() == nil; {
		k := min(batch, n-opened)
		if got := p.add(ctx, k, k); got < k {
			return 0, ph.presence.Load(), want, fmt.Errorf("only %d of %d streams opened: %v", opened+got, n, p.err())
		}
		opened += k
	}
	attached := time.Since(t0)
	// Wait for the last deliveries; give up early when they stop coming.
	last, lastChange := int64(-1), time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-ph.presenceDone:
			break wait
		case <-ctx.Done():
			break wait
		case <-tick.C:
			if got := ph.presence.Load(); got != last {
				last, lastChange = got, time.Now()
			} else if time.Since(lastChange) > 10*time.Second {
				break wait
			}
		}
	}
	r.cpuNote(cpu)
	got = ph.presence.Load()
	if got < want {
		if got == 0 {
			return 0, got, want, fmt.Errorf("no %s event arrived: is the server running with -presence=false (new_user) or without -presence-topics (join)?", name)
		}
		return 0, got, want, fmt.Errorf("%d of %d %s deliveries (gave up after -timeout %s or 10s without one)", got, want, name, r.o.timeout)
	}
	secs = time.Duration(ph.presenceAt.Load() - t0.UnixNano()).Seconds()
	r.logf("all %d attached in %.3fs; every %s seen after %.3fs (%.0f deliveries/s)",
		n, attached.Seconds(), name, secs, float64(want)/secs)
	return secs, got, want, nil
}
