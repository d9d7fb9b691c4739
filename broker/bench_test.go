package broker_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/crierhq/crier/broker"
)

// wireStub stands in for the SSE encoder: benchmarks measure the broker, not encoding.
func wireStub(ev *broker.Event) []byte { return make([]byte, 0, 160) }

// BenchmarkPublish publishes 100-byte events to subs subscribers of one topic, each
// drained after every publish as a stream writer would: one op is one publish and its
// fan-out.
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
					batch, _ = s.Take(batch[:0])
					clear(batch)
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
			br := broker.New(broker.Options{Presence: true, Encode: wireStub})
			defer br.Close()
			ss := make([]*broker.Subscription, open)
			for i := range ss {
				s, err := br.Subscribe(broker.Request{})
				if err != nil {
					b.Fatal(err)
				}
				ss[i] = s
			}
			var batch []*broker.Event
			b.ReportAllocs()
			for b.Loop() {
				s, err := br.Subscribe(broker.Request{})
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
				for _, s := range ss {
					batch, _ = s.Take(batch[:0])
					clear(batch)
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
	woken := 0
	for i := range ss {
		s, err := br.Subscribe(broker.Request{Topics: []string{"t"}})
		if err != nil {
			b.Fatal(err)
		}
		s.Notify(func() { woken++ })
		ss[i] = s
	}
	m := broker.Message{Topic: "t", Data: make([]byte, 100)}
	var batch []*broker.Event
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Publish(context.Background(), m); err != nil {
			b.Fatal(err)
		}
		for _, s := range ss {
			batch, _ = s.Take(batch[:0])
			clear(batch)
		}
	}
	if woken < b.N*subs {
		b.Fatalf("woken %d times, want %d", woken, b.N*subs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
}
