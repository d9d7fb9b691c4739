package cluster_test

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crierhq/crier/internal/testenv"
)

// TestRedisCostPerPublish publishes keyed events to 100 topics through two nodes and
// checks that every event reaches the streams of both nodes exactly once. It measures
// what each publish cost Redis (its CPU time from INFO cpu, which includes the nodes'
// reads of the log), the publish throughput and the cross-node latency. CI runs 2,000
// events; the figures in BENCHMARKS.md come from 20,000:
//
//	CRIER_BENCH=1 go test -run RedisCostPerPublish -v ./e2e/cluster/
func TestRedisCostPerPublish(t *testing.T) {
	events := 2_000
	if os.Getenv("CRIER_BENCH") == "1" {
		events = 20_000
	}
	const topics = 100
	publishers := 16
	if n, err := strconv.Atoi(os.Getenv("CRIER_BENCH_PUBLISHERS")); err == nil && n > 0 {
		publishers = n
	}
	r := testenv.StartRedis(t)
	if os.Getenv("CRIER_BENCH_AOF") == "no" {
		r.Do(t, "CONFIG", "SET", "appendonly", "no")
	}
	nodes := startNodes(t, r, 2, "-buffer", "100000")

	// Each node has two streams, one for each half of the topics (a stream follows at
	// most 64). Every stream gets the events of its topics from both nodes.
	var (
		mu  sync.Mutex
		lat []time.Duration // published on one node, received on the other
		got = map[string]int{}
		wg  sync.WaitGroup
	)
	for n, node := range nodes {
		for half := range 2 {
			var q []string
			for i := half * topics / 2; i < (half+1)*topics/2; i++ {
				q = append(q, "topic=t"+strconv.Itoa(i))
			}
			s := open(t, node.URL+"/events?"+strings.Join(q, "&"), "")
			wg.Go(func() {
				for range events / 2 {
					ev := s.nextNamed("e", 2*time.Minute)
					from, sent, _ := strings.Cut(ev.Data, " ")
					ns, _ := strconv.ParseInt(sent, 10, 64)
					d := time.Since(time.Unix(0, ns))
					mu.Lock()
					got[fmt.Sprint(n, half, ev.ID)]++
					if from != strconv.Itoa(n) {
						lat = append(lat, d)
					}
					mu.Unlock()
				}
			})
		}
	}

	cpu := func() float64 { return r.CPU(t) }
	// What Redis spends with nothing published (its timers, the nodes' beats and
	// blocked reads), to tell it apart from what publishing costs.
	idleFrom, idleStart := cpu(), time.Now()
	time.Sleep(3 * time.Second)
	idle := (cpu() - idleFrom) / time.Since(idleStart).Seconds()
	r.Do(t, "CONFIG", "RESETSTAT")
	before := cpu()
	start := time.Now()
	next := make(chan int)
	var pw sync.WaitGroup
	for range publishers {
		pw.Go(func() {
			for i := range next {
				n := i % len(nodes)
				q := "topic=t" + strconv.Itoa(i%topics) + "&event=e"
				body := strconv.Itoa(n) + " " + strconv.FormatInt(time.Now().UnixNano(), 10)
				if code, _ := publishKeyed(nodes[n], q, body, "key-"+strconv.Itoa(i)); code != http.StatusOK {
					t.Errorf("publish %d: status %d", i, code)
				}
			}
		})
	}
	for i := range events {
		next <- i
	}
	close(next)
	pw.Wait()
	elapsed := time.Since(start)
	wg.Wait()
	used := cpu() - before

	for k, c := range got {
		if c != 1 {
			t.Errorf("stream %s got an event %d times", k, c)
		}
	}
	if len(got) != 2*events {
		t.Errorf("the streams got %d events in all, want %d (each event on both nodes)", len(got), 2*events)
	}
	slices.Sort(lat)
	p := func(q float64) string {
		if len(lat) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f ms", float64(lat[int(q*float64(len(lat)-1))].Microseconds())/1000)
	}
	// Where Redis' time went, by command, as Redis itself counts it (the rest of its CPU
	// is its event loop, the network and the append-only file).
	for name, v := range r.Info(t, "commandstats") {
		if fields := strings.Split(v, ","); strings.HasPrefix(name, "cmdstat_") && len(fields) > 2 {
			t.Logf("%s: %s, %s, %s", strings.TrimPrefix(name, "cmdstat_"), fields[0], fields[1], fields[2])
		}
	}
	busy := time.Since(start).Seconds()
	t.Logf("| %d keyed publishes, 100 topics, 2 nodes, %d publishers | Redis CPU %.1f µs per publish (%.1f µs beyond its idle %.1f ms/s) | %.0f publishes/s | cross-node p50 %s | p99 %s |",
		events, publishers, used/float64(events)*1e6, (used-idle*busy)/float64(events)*1e6, idle*1e3,
		float64(events)/elapsed.Seconds(), p(0.5), p(0.99))
}

// publishKeyed posts a text event with an Idempotency-Key and returns the status and id.
func publishKeyed(node *testenv.Process, query, body, key string) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, node.URL+"/publish?"+query, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var buf [64]byte
	n, _ := resp.Body.Read(buf[:])
	return resp.StatusCode, string(buf[:n])
}
