package cluster_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/crierhq/crier/internal/testenv"
)

// TestResumeHerd: clients of a node that stopped arrive at a node that has just started
// (so nothing they missed is in its memory) and all resume at once, from ten different
// ids; every one must get what it missed from Redis' history, in order, without a missed
// notice. It prints what the herd cost Redis, how many history reads it took (resumes
// from one id share a read) and the publish latency on the other node meanwhile. CI runs
// 200 clients; BENCHMARKS.md has 10,000:
//
//	CRIER_BENCH=1 go test -run ResumeHerd -v ./e2e/cluster/
func TestResumeHerd(t *testing.T) {
	clients := 200
	if os.Getenv("CRIER_BENCH") == "1" {
		clients = 10_000
	}
	const events = 40
	r := testenv.StartRedis(t)
	a := testenv.Start(t, nodeArgs(r, "-presence=false"))
	var ids []string
	for i := range events {
		_, id := publish(t, a, "topic=news&event=headline", strconv.Itoa(i))
		ids = append(ids, id)
	}
	b := testenv.Start(t, nodeArgs(r, "-presence=false", "-max-streams-per-ip", "0"))
	testenv.WaitOK(t, nil, b.URL+"/readyz", 20*time.Second, func() string { return "" })

	cpu := func() float64 { return r.CPU(t) }
	r.Do(t, "CONFIG", "RESETSTAT")
	before := cpu()
	start := time.Now()

	// A publisher on the other node, timing each publish while the herd arrives.
	stop := make(chan struct{})
	var lat []time.Duration
	var pw sync.WaitGroup
	pw.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			if code, _ := publishQuiet(a, "topic=other&event=tick", "x"); code != http.StatusOK {
				t.Errorf("publish during the herd: %d", code)
				return
			}
			lat = append(lat, time.Since(t0))
			time.Sleep(5 * time.Millisecond) // the publisher's pace, not a wait
		}
	})

	var wg sync.WaitGroup
	sem := make(chan struct{}, 500) // connections being opened at once
	for c := range clients {
		from := c % 10 // ten groups, each resuming after its own id
		want := events - 1 - from
		sem <- struct{}{}
		wg.Go(func() {
			conn, err := net.DialTimeout("tcp", b.Addr, 30*time.Second)
			<-sem
			if err != nil {
				t.Errorf("client %d: %v", c, err)
				return
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET /events?topic=news HTTP/1.1\r\nHost: crier\r\nLast-Event-ID: %s\r\n\r\n", ids[from])
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
			rd := bufio.NewReaderSize(conn, 4096)
			got, next := 0, from+1
			for got < want {
				line, err := rd.ReadSlice('\n')
				if err != nil {
					t.Errorf("client %d: %d of %d events, then %v", c, got, want, err)
					return
				}
				switch {
				case bytes.HasPrefix(line, []byte("event: missed")):
					t.Errorf("client %d: missed notice", c)
					return
				case bytes.HasPrefix(line, []byte("data: ")):
					if string(bytes.TrimSpace(line[6:])) != strconv.Itoa(next) {
						t.Errorf("client %d: got %q, want %d", c, bytes.TrimSpace(line[6:]), next)
						return
					}
					got, next = got+1, next+1
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(stop)
	pw.Wait()
	used := cpu() - before
	reads := r.Info(t, "commandstats")["cmdstat_xrange"]
	slices.Sort(lat)
	p := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(q*float64(len(lat)-1))].Round(10 * time.Microsecond)
	}
	t.Logf("| %d resumes from 10 ids, %d events each at most | all replayed in %s | Redis CPU %.0f ms | history reads: %s | publish on the other node meanwhile: p50 %s, p99 %s, max %s |",
		clients, events-1, took.Round(time.Millisecond), used*1e3, reads, p(0.5), p(0.99), p(1))
}
