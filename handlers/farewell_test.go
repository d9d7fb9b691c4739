package handlers_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crierhq/crier/handlers"
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
			s := setup{proto: proto}.start(t, presenceHistory, handlers.Options{Retry: time.Second, ReconnectSpread: 5 * time.Second})
			var opened []*stream
			for range streams {
				st := s.open(t, "", nil)
				if line, err := st.Line(); line != "retry: 1000" {
					t.Fatalf("opening %q (%v), want retry: 1000", line, err)
				}
				opened = append(opened, st)
			}
			s.broker.Close()
			seen := map[int]bool{}
			for i, st := range opened {
				last := -1
				for {
					line, err := st.Line()
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
