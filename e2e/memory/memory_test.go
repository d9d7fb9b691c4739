// Package memory_test measures what retained history costs a running crier.
package memory_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crierhq/crier/internal/testenv"
)

const token = "memory-test-token"

// TestMemoryPerRetainedEvent publishes 100-byte events spread over 1, 1,000 and 100,000
// topics to a single node and compares its resident memory before and after with the
// events retained, and with what -history-memory counts (crier_history_bytes). CI runs
// 2,000 events per case; BENCHMARKS.md has 100,000:
//
//	CRIER_BENCH=1 go test -run MemoryPerRetainedEvent -v ./e2e/memory/
func TestMemoryPerRetainedEvent(t *testing.T) {
	events := 2_000
	if os.Getenv("CRIER_BENCH") == "1" {
		events = 100_000
	}
	for _, topics := range []int{1, 1_000, 100_000} {
		t.Run(fmt.Sprint(topics, " topics"), func(t *testing.T) {
			perTopic := max(1, events/topics)
			n := testenv.Start(t, []string{"-publish-token", token, "-log-level", "warn", "-presence=false",
				"-history", strconv.Itoa(perTopic), "-history-memory", "0"})
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
			before := rss(t, n)
			body := strings.Repeat("x", 100)
			next := make(chan int)
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					for i := range next {
						req, _ := http.NewRequest(http.MethodPost, n.URL+"/publish?topic=t"+strconv.Itoa(i%topics), strings.NewReader(body))
						req.Header.Set("Authorization", "Bearer "+token)
						req.Header.Set("Content-Type", "text/plain")
						resp, err := client.Do(req)
						if err != nil {
							t.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				})
			}
			for i := range events {
				next <- i
			}
			close(next)
			wg.Wait()
			time.Sleep(2 * time.Second) // let the runtime settle
			after := rss(t, n)
			retained, counted := metric(t, n, "crier_history_events"), metric(t, n, "crier_history_bytes")
			if retained != float64(events) {
				t.Errorf("%v events retained, want %d", retained, events)
			}
			t.Logf("| %d | %d | %.0f | %.0f | %.0f |", topics, events, float64(after-before)/retained, counted/retained, float64(after-before)/1024/1024)
		})
	}
}

// rss reads the node's resident set size in bytes.
func rss(t *testing.T, n *testenv.Process) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// metric reads one unlabelled gauge from /metrics.
func metric(t *testing.T, n *testenv.Process, name string) float64 {
	t.Helper()
	resp, err := http.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}
