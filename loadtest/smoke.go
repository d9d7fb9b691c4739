package main

import (
	"context"
	"fmt"
	"time"
)

// smoke runs every scenario small and short, to show the tool works against a real
// server: streams open, events arrive, nothing is lost. It checks no timing.
func (r *runner) smoke(ctx context.Context) (result, error) {
	base := r.o
	n := max(base.streams, 10)
	d := max(base.duration, 200*time.Millisecond)
	phases := []struct {
		name string
		set  func(o *options)
		run  func(ctx context.Context) (result, error)
	}{
		{"idle", func(o *options) { o.streams, o.settle = n, 500*time.Millisecond }, r.idle},
		{"fanout", func(o *options) { o.streams, o.rate, o.publishers = n, 50, 1 },
			func(ctx context.Context) (result, error) { return r.load(ctx, "fanout") }},
		{"saturate", func(o *options) { o.streams, o.rate, o.publishers, o.window = max(n/2, 1), 0, 2, 16 },
			func(ctx context.Context) (result, error) { return r.load(ctx, "saturate") }},
		{"publish-latency", func(o *options) { o.streams, o.rate, o.publishers = n, 100, 1 },
			func(ctx context.Context) (result, error) { return r.load(ctx, "publish-latency") }},
		{"presence", func(o *options) { o.sequential, o.streams, o.batch = max(n/2, 1), n, 20 }, r.presence},
		{"herd", func(o *options) { o.sequential, o.streams, o.arrive = 0, n, 200*time.Millisecond }, r.herd},
		// Publishers with no window post faster than any server delivers: it must slow
		// them down (or refuse some with 503), not cut streams off or lose events.
		{"overload", func(o *options) { o.streams, o.rate, o.publishers, o.window, o.openLoop = n, 0, 8, 0, true },
			func(ctx context.Context) (result, error) { return r.load(ctx, "overload") }},
	}
	res := result{Scenario: "smoke", ServerCPU: -1}
	ok := true
	for _, ph := range phases {
		o := base
		o.duration, o.size, o.settle, o.drain = d, 100, 300*time.Millisecond, 5*time.Second
		ph.set(&o)
		r.o = o
		r.logf("smoke: %s", ph.name)
		pr, err := ph.run(ctx)
		pr.Scenario = ph.name
		if err != nil {
			pr.Error = err.Error()
		}
		if problem := smokeProblem(pr, o); problem != "" {
			r.logf("smoke: %s failed: %s", ph.name, problem)
			if pr.Error == "" {
				pr.Error = problem
			}
			ok = false
		}
		res.Phases = append(res.Phases, pr)
		res.Streams = max(res.Streams, pr.Streams)
		res.Deliveries += pr.Deliveries
		res.Lost += pr.Lost
		res.Duplicates += pr.Duplicates
		if ctx.Err() != nil {
			ok = false
			break
		}
	}
	r.o = base
	res.OK = &ok
	return res, nil
}

// smokeProblem says what is wrong with a phase's result, or "".
func smokeProblem(pr result, o options) string {
	switch {
	case pr.Error != "":
		return pr.Error
	case pr.FailedStreams+pr.RefusedStreams > 0:
		return fmt.Sprintf("%d streams failed to open, %d refused", pr.FailedStreams, pr.RefusedStreams)
	case pr.DroppedStreams > 0:
		return fmt.Sprintf("%d streams ended by the server", pr.DroppedStreams)
	case pr.Scenario == "idle":
		if pr.Streams != int64(o.streams) {
			return fmt.Sprintf("%d of %d streams open", pr.Streams, o.streams)
		}
	case pr.Scenario == "herd":
		if pr.Live != int64(o.streams) || pr.Resumed != int64(o.streams) || pr.Missed > 0 || pr.PresenceIncomplete {
			return fmt.Sprintf("%d of %d streams live, %d resumed, %d missed, %d of %d new_user deliveries",
				pr.Live, o.streams, pr.Resumed, pr.Missed, pr.Deliveries, pr.PresenceExpected)
		}
	case pr.Scenario == "presence":
		if pr.PresenceIncomplete || pr.Deliveries == 0 {
			return fmt.Sprintf("%d of %d new_user deliveries", pr.Deliveries, pr.PresenceExpected)
		}
	default:
		switch {
		case pr.Streams != int64(o.streams):
			return fmt.Sprintf("%d of %d streams open", pr.Streams, o.streams)
		case pr.Published == 0 || pr.Deliveries == 0:
			return fmt.Sprintf("published %d, delivered %d", pr.Published, pr.Deliveries)
		case pr.Lost+pr.Duplicates+pr.IDRegressions+pr.Malformed+pr.PublishErrors > 0:
			return fmt.Sprintf("lost %d, duplicates %d, id regressions %d, malformed %d, publish errors %d",
				pr.Lost, pr.Duplicates, pr.IDRegressions, pr.Malformed, pr.PublishErrors)
		case pr.Refused > 0 && pr.Scenario != "overload":
			return fmt.Sprintf("%d publishes refused with 503", pr.Refused)
		}
	}
	return ""
}
