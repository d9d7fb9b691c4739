package handlers_test

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
	"github.com/crierhq/crier/handlers/hub"
)

// TestEndedStreamsSpreadRetry: a stream that crier ends itself (here: shutdown) gets,
// just before its clean end, a retry field drawn from [Retry, Retry+ReconnectSpread],
// on the hub's path (HTTP/1.1) and on the handler's (HTTP/2); the draws differ.
func TestEndedStreamsSpreadRetry(t *testing.T) {
	t.Parallel()
	const streams = 20
	for _, proto := range []string{"h1", "h2"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			var b *broker.Broker
			h, _ := opsHandler(t, func(o *handlers.Options) {
				b = o.Broker.(*broker.Broker)
				o.Retry, o.ReconnectSpread = time.Second, 5*time.Second
				if proto == "h1" {
					o.Hub = hub.New(hub.Options{})
					t.Cleanup(o.Hub.Close)
				}
			})
			srv, client, _ := protoServer(t, proto, h, 0)
			var bodies []*bufio.Reader
			for range streams {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				t.Cleanup(cancel)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events", nil)
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("GET /events: %v %v", resp, err)
				}
				t.Cleanup(func() { resp.Body.Close() })
				r := bufio.NewReader(resp.Body)
				if line, err := r.ReadString('\n'); line != "retry: 1000\n" {
					t.Fatalf("opening %q (%v), want retry: 1000", line, err)
				}
				bodies = append(bodies, r)
			}
			b.Close()
			seen := map[int]bool{}
			for i, r := range bodies {
				last := -1
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						break // the end: clean or not, the farewell came before it
					}
					if ms, ok := strings.CutPrefix(strings.TrimSpace(line), "retry: "); ok {
						last, _ = strconv.Atoi(ms)
					}
				}
				if last < 1000 || last > 6000 {
					t.Fatalf("stream %d: last retry %d ms, want one within [1000, 6000]", i, last)
				}
				seen[last] = true
			}
			if len(seen) < streams/2 {
				t.Errorf("%d streams were told only %d different retry delays: not spread", streams, len(seen))
			}
		})
	}
}
