package webhook_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/crierhq/crier/webhook"
)

// BenchmarkObserve is what a webhook adds to each connect, disconnect, join and leave,
// which call Observe with the broker's lock held: an enqueue while the queue has room,
// a drop once it is full. The backend never answers, so nothing leaves the queue.
func BenchmarkObserve(b *testing.B) {
	for _, tc := range []struct {
		name string
		full bool
	}{{"enqueue", false}, {"drop", true}} {
		b.Run(tc.name, func(b *testing.B) {
			hang := make(chan struct{})
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				<-hang
			}))
			defer backend.Close()
			defer close(hang)
			queue := 1
			if !tc.full {
				queue = b.N + 1 // room for every event: b.N of about 88 bytes
			}
			s, err := webhook.New(webhook.Options{URL: backend.URL, Secret: secret, Queue: queue})
			if err != nil {
				b.Fatal(err)
			}
			a := activity(1)
			s.Observe(a) // taken, in flight, and counted against the bound
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				s.Observe(a)
			}
			b.StopTimer()
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = s.Close(ctx)
		})
	}
}
