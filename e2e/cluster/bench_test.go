package cluster_test

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crierhq/crier/internal/testenv"
)

// TestScaleOutFigures measures publish-to-receive latency and publish throughput on one
// node in memory, one node on Redis, and three nodes on Redis (published on the first,
// received on all three), for BENCHMARKS.md. It runs only with CRIER_BENCH=1:
//
//	CRIER_BENCH=1 go test -run ScaleOutFigures -v ./e2e/cluster/
func TestScaleOutFigures(t *testing.T) {
	if os.Getenv("CRIER_BENCH") != "1" {
		t.Skip("set CRIER_BENCH=1 to measure")
	}
	const (
		streamsPerNode = 20
		rate           = 1000 // events/s in the latency phase
		latencyFor     = 5 * time.Second
		burst          = 30_000 // events in the throughput phase
		publishers     = 8
	)
	base := []string{"-publish-token", token, "-presence=false", "-buffer", "100000", "-log-level", "warn"}
	for _, setup := range []struct {
		name  string
		nodes func(t *testing.T) []*testenv.Process
	}{
		{"1 node, in memory", func(t *testing.T) []*testenv.Process {
			return []*testenv.Process{testenv.Start(t, base)}
		}},
		{"1 node, Redis", func(t *testing.T) []*testenv.Process {
			r := testenv.StartRedis(t)
			return []*testenv.Process{testenv.Start(t, append([]string{"-redis-url", r.URL}, base...))}
		}},
		{"3 nodes, Redis", func(t *testing.T) []*testenv.Process {
			r := testenv.StartRedis(t)
			var ns []*testenv.Process
			for range 3 {
				ns = append(ns, testenv.Start(t, append([]string{"-redis-url", r.URL}, base...)))
			}
			return ns
		}},
	} {
		t.Run(setup.name, func(t *testing.T) {
			nodes := setup.nodes(t)
			var streams []*stream
			for _, n := range nodes {
				for range streamsPerNode {
					streams = append(streams, open(t, n.URL+"/events?topic=bench", ""))
				}
			}
			pub := nodes[0]

			// Latency: a steady rate, each event carrying its send time.
			var mu sync.Mutex
			var lat []time.Duration
			var wg sync.WaitGroup
			n := int(rate * latencyFor.Seconds())
			for _, s := range streams {
				wg.Go(func() {
					for range n {
						ev := s.next(30 * time.Second)
						sent, _ := strconv.ParseInt(ev.Data, 10, 64)
						d := time.Since(time.Unix(0, sent))
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
				})
			}
			tick := time.NewTicker(time.Second / rate)
			for range n {
				<-tick.C
				if code, _ := publishQuiet(pub, "topic=bench&event=b", strconv.FormatInt(time.Now().UnixNano(), 10)); code != http.StatusOK {
					t.Fatalf("publish: %d", code)
				}
			}
			tick.Stop()
			wg.Wait()
			slices.Sort(lat)
			p := func(q float64) string {
				return fmt.Sprintf("%.2f ms", float64(lat[int(q*float64(len(lat)-1))].Microseconds())/1000)
			}

			// Throughput: keep-alive publishers as fast as the node answers.
			for _, s := range streams {
				wg.Go(func() {
					for range burst {
						s.next(60 * time.Second)
					}
				})
			}
			var left atomic.Int64
			left.Store(burst)
			start := time.Now()
			var pw sync.WaitGroup
			for range publishers {
				pw.Go(func() {
					for left.Add(-1) >= 0 {
						if code, _ := publishQuiet(pub, "topic=bench&event=b", "x"); code != http.StatusOK {
							t.Errorf("publish: %d", code)
							return
						}
					}
				})
			}
			pw.Wait()
			published := time.Since(start)
			wg.Wait()
			delivered := time.Since(start)
			t.Logf("| %s | %d | %s | %s | %s | %.0f | %.0f |", setup.name, len(streams), p(0.5), p(0.99), p(1),
				burst/published.Seconds(), float64(burst*len(streams))/delivered.Seconds())
		})
	}
}
