package redisbus_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/internal/testenv"
)

// BenchmarkPublish measures what a keyed publish to one of 100 topics costs Redis (its
// CPU time from INFO cpu, as redis-µs/op), one publisher at a time and 32 at once (whose
// publishes share script calls):
//
//	go test -run '^$' -bench Publish -benchtime 20000x ./broker/redisbus/
func BenchmarkPublish(b *testing.B) {
	for _, tc := range []struct {
		name       string
		publishers int
	}{{"sequential", 1}, {"concurrent", 32}} {
		b.Run(tc.name, func(b *testing.B) {
			r := testenv.StartRedis(b)
			n := startNode(b, r.URL, newPrefix(), broker.Options{History: 1000}, nil)
			cpu := func() float64 { return r.CPU(b) }
			var next = make(chan int)
			done := make(chan struct{})
			for range tc.publishers {
				go func() {
					defer func() { done <- struct{}{} }()
					for i := range next {
						m := broker.Message{Topic: "t" + strconv.Itoa(i%100), Name: "e", Data: []byte("payload " + strconv.Itoa(i)),
							Text: true, Key: "k" + strconv.Itoa(i), Publisher: "p"}
						if _, err := n.Publish(context.Background(), m); err != nil {
							b.Error(err)
						}
					}
				}()
			}
			before := cpu()
			b.ResetTimer()
			for i := range b.N {
				next <- i
			}
			close(next)
			for range tc.publishers {
				<-done
			}
			b.StopTimer()
			b.ReportMetric((cpu()-before)/float64(b.N)*1e6, "redis-µs/op")
		})
	}
}
