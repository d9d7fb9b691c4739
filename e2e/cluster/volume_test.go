package cluster_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crierhq/crier/internal/testenv"
)

// TestManyEventsOneOrder publishes events on three nodes at once, from several
// keep-alive clients per node, and checks that every subscriber of every node receives
// every event exactly once and in the same order, with increasing ids: 100,000 events
// (about 15 s on two cores), or 20,000 with -short.
func TestManyEventsOneOrder(t *testing.T) {
	total := 100_000
	if testing.Short() {
		total = 20_000
	}
	r := testenv.StartRedis(t)
	// The test's readers share two cores with three nodes, Redis and the publishers:
	// a deep queue keeps a momentarily slow reader from being cut off.
	nodes := startNodes(t, r, 3, "-buffer", "200000", "-presence=false")
	var streams []*stream
	for _, n := range nodes {
		for range 2 {
			streams = append(streams, open(t, n.URL+"/events", ""))
		}
	}
	const perNode = 4 // publishing clients per node
	start := time.Now()
	var wg sync.WaitGroup
	published := make([][]string, len(nodes)*perNode)
	for i := range published {
		node := nodes[i%len(nodes)]
		count := total / len(published)
		if i < total%len(published) {
			count++
		}
		wg.Go(func() {
			for j := range count {
				code, id := publishQuiet(node, "event=n", strconv.Itoa(i)+"/"+strconv.Itoa(j))
				if code != http.StatusOK {
					t.Errorf("publish: %d", code)
					return
				}
				published[i] = append(published[i], id)
			}
		})
	}
	wg.Wait()
	pubTime := time.Since(start)
	if t.Failed() {
		t.FailNow()
	}

	var want []string // every id, in order
	for _, ids := range published {
		want = append(want, ids...)
	}
	slices.Sort(want) // 16-digit ids sort as numbers
	var first []string
	for k, s := range streams {
		got := make([]string, 0, total)
		for len(got) < total {
			ev := s.next(30 * time.Second)
			if ev.Name != "n" {
				continue
			}
			got = append(got, ev.ID)
		}
		if k == 0 {
			first = got
			if !slices.Equal(got, want) {
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("stream 0, event %d: id %s, want %s (every published id, in order)", i, got[i], want[i])
					}
				}
			}
			continue
		}
		if !slices.Equal(got, first) {
			for i := range got {
				if got[i] != first[i] {
					t.Fatalf("stream %d, event %d: id %s, stream 0 had %s", k, i, got[i], first[i])
				}
			}
		}
	}
	elapsed := time.Since(start)
	t.Logf("%d events published across 3 nodes in %s (%.0f/s); all %d streams had all of them, in one order, after %s",
		total, pubTime.Round(time.Millisecond), float64(total)/pubTime.Seconds(), len(streams), elapsed.Round(time.Millisecond))
}

// publishQuiet is publish without a *testing.T, for publishing goroutines.
func publishQuiet(node *testenv.Process, query, body string) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, node.URL+"/publish?"+query, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var buf [64]byte
	n, _ := resp.Body.Read(buf[:])
	// {"id":"1234567890123456"}
	s := string(buf[:n])
	if len(s) < 25 {
		return resp.StatusCode, fmt.Sprint(s)
	}
	return resp.StatusCode, s[7:23]
}
