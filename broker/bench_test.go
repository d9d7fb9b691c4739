package broker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/crierhq/crier/broker"
)

// wireStub stands in for the SSE encoder: benchmarks measure the broker, not encoding.
func wireStub(ev *broker.Event) []byte { return make([]byte, 0, 160) }

// BenchmarkPublish publishes 100-byte events to subs subscribers of one topic, each
// drained after every publish as a stream writer would, once the dispatcher has queued
// the event for it: one op is one publish and its fan-out.
func BenchmarkPublish(b *testing.B) {
	for _, subs := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			br := broker.New(broker.Options{History: 1000, Encode: wireStub})
			defer br.Close()
			ss := make([]*broker.Subscription, subs)
			for i := range ss {
				s, err := br.Subscribe(broker.Request{Topics: []string{"t"}})
				if err != nil {
					b.Fatal(err)
				}
				ss[i] = s
			}
			m := broker.Message{Topic: "t", Data: make([]byte, 100)}
			var batch []*broker.Event
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := br.Publish(ctx, m); err != nil {
					b.Fatal(err)
				}
				for _, s := range ss {
					batch = takeN(s, batch, 1)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
		})
	}
}

// BenchmarkPresence attaches and detaches one subscriber while open others are open,
// with presence on: one op is two announcements to every open subscriber, drained.
func BenchmarkPresence(b *testing.B) {
	for _, open := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("open=%d", open), func(b *testing.B) {
			// Queues hold every arrival's new_user: the setup drains one subscriber
			// at a time, and the broker waits for a full queue whose consumer is not
			// blocked.
			br := broker.New(broker.Options{Presence: true, Encode: wireStub, Buffer: open + 2})
			defer br.Close()
			ss, batch := crowd(b, br, open, func(int) broker.Request { return broker.Request{} })
			b.ReportAllocs()
			for b.Loop() {
				s, err := br.Subscribe(broker.Request{})
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
				for _, s := range ss {
					batch = takeN(s, batch, 2)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2*open), "ns/delivery")
		})
	}
}

// BenchmarkNotify is BenchmarkPublish's fan-out with subscribers that are woken through
// Notify, as the stream hub does, instead of their Ready channel.
func BenchmarkNotify(b *testing.B) {
	const subs = 10000
	br := broker.New(broker.Options{Encode: wireStub})
	defer br.Close()
	ss := make([]*broker.Subscription, subs)
	var woken atomic.Int64
	all := make(chan struct{}, 1) // every subscriber has been woken once more
	for i := range ss {
		s, err := br.Subscribe(broker.Request{Topics: []string{"t"}})
		if err != nil {
			b.Fatal(err)
		}
		s.Notify(func() {
			if woken.Add(1)%subs == 0 {
				all <- struct{}{}
			}
		})
		ss[i] = s
	}
	m := broker.Message{Topic: "t", Data: make([]byte, 100)}
	var batch []*broker.Event
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Publish(context.Background(), m); err != nil {
			b.Fatal(err)
		}
		<-all
		for _, s := range ss {
			batch, _ = s.Take(batch[:0])
			clear(batch)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
}

// takeN drains n events from s, waiting for the dispatcher to queue them. Taking fewer
// than are coming would leave the rest to a later call, and taking early lets the queue
// limit apply: callers must count exactly.
// crowd subscribes n with the request req(i) for the i-th, each announced to everyone
// (a new_user, or a join in a room), and drains what the announcements queued, as stream
// writers would. It returns the subscriptions and the batch buffer, for takeN.
func crowd(b *testing.B, br *broker.Broker, n int, req func(i int) broker.Request) ([]*broker.Subscription, []*broker.Event) {
	ss := make([]*broker.Subscription, n)
	for i := range ss {
		s, err := br.Subscribe(req(i))
		if err != nil {
			b.Fatal(err)
		}
		ss[i] = s
	}
	var batch []*broker.Event
	for i, s := range ss {
		batch = takeN(s, batch, n-i) // the announcement of every later arrival
	}
	return ss, batch
}

func takeN(s *broker.Subscription, batch []*broker.Event, n int) []*broker.Event {
	for got := 0; got < n; {
		<-s.Ready()
		batch, _ = s.Take(batch[:0])
		got += len(batch)
		clear(batch)
	}
	return batch
}
