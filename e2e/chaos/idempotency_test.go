package chaos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crierhq/crier/e2e/internal/sseconn"
	"github.com/crierhq/crier/internal/testenv"
)

// storm publishes keys events, each sent by copies concurrent requests with the same
// Idempotency-Key to the nodes in turn, every request retried until it gets a 200. It
// returns the id each key got, and fails the test if two answers for one key differ.
func storm(t *testing.T, addrs []string, keys, copies int, during func()) map[string]string {
	t.Helper()
	var (
		mu      sync.Mutex
		ids     = map[string]string{}
		retries atomic.Int64
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 64)
		started atomic.Int64
	)
	total := int64(keys * copies)
	for k := range keys {
		for c := range copies {
			sem <- struct{}{}
			started.Add(1)
			wg.Go(func() {
				defer func() { <-sem }()
				key := fmt.Sprintf("storm-%d", k)
				addr := addrs[(k+c)%len(addrs)]
				deadline := time.Now().Add(time.Minute)
				for attempt := 0; ; attempt++ {
					if time.Now().After(deadline) {
						t.Errorf("%s: no 200 within a minute", key)
						return
					}
					if attempt > 0 {
						retries.Add(1)
						time.Sleep(time.Duration(min(attempt, 10)) * 30 * time.Millisecond)
					}
					status, raw, err := publishKeyed(addr, "topic=storm&event=once", key, key)
					if err != nil || status >= 500 {
						continue
					}
					var out struct{ ID string }
					if status != http.StatusOK || json.Unmarshal(raw, &out) != nil || out.ID == "" {
						t.Errorf("%s: %d %s", key, status, raw)
						return
					}
					mu.Lock()
					if prev, ok := ids[key]; ok && prev != out.ID {
						t.Errorf("%s: answered id %s and id %s: the retry was published again", key, prev, out.ID)
					}
					ids[key] = out.ID
					mu.Unlock()
					return
				}
			})
			if during != nil && started.Load() == total/2 {
				during()
			}
		}
	}
	wg.Wait()
	t.Logf("%d keys x %d copies: %d retries after errors or 5xx", keys, copies, retries.Load())
	return ids
}

// collect follows topic "storm" on addr from lastID (reconnecting when the stream ends)
// until want distinct keys arrived and a little longer, and returns how often each key
// was delivered.
func collect(t *testing.T, addr, lastID string, want int, ready chan<- struct{}) map[string]int {
	got := map[string]int{}
	deadline := time.Now().Add(90 * time.Second)
	quietUntil := time.Time{}
	for time.Now().Before(deadline) {
		h := http.Header{}
		if lastID != "" {
			h.Set("Last-Event-ID", lastID)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := sseconn.Open(ctx, addr, "/events?topic=storm", h)
		cancel()
		if err != nil || st.Expect200() != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for {
			st.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			ev, err := st.Next()
			if err != nil {
				break
			}
			if ev.ID != "" {
				lastID = ev.ID
			}
			switch ev.Name {
			case "new_user":
				if ready != nil {
					close(ready)
					ready = nil
				}
			case "missed":
				t.Errorf("missed notice: %s", ev.Data)
			case "once":
				got[ev.Data]++
			}
			if len(got) == want && quietUntil.IsZero() {
				quietUntil = time.Now().Add(time.Second) // duplicates would come now
			}
		}
		st.Close()
		if !quietUntil.IsZero() && time.Now().After(quietUntil) {
			return got
		}
	}
	t.Errorf("stream: %d of %d keys before the deadline", len(got), want)
	return got
}

func checkExactlyOnce(t *testing.T, ids map[string]string, got map[string]int, keys int) {
	t.Helper()
	if len(ids) != keys {
		t.Errorf("%d keys answered, want %d", len(ids), keys)
	}
	bad := 0
	for k := range ids {
		if got[k] != 1 {
			bad++
			if bad <= 5 {
				t.Errorf("%s delivered %d times, want exactly once", k, got[k])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d keys not delivered exactly once", bad, keys)
	}
}

func TestRetryStormInMemory(t *testing.T) {
	const keys, copies = 300, 8
	node := testenv.Start(t, []string{"-publish-token", token, "-log-level", "warn", "-history", "10000"})
	ready := make(chan struct{})
	result := make(chan map[string]int, 1)
	go func() { result <- collect(t, node.Addr, "", keys, ready) }()
	<-ready
	ids := storm(t, []string{node.Addr}, keys, copies, nil)
	checkExactlyOnce(t, ids, <-result, keys)
}

func TestRetryStormAcrossRedisRestart(t *testing.T) {
	const keys, copies = 200, 6
	redis := testenv.StartRedis(t)
	args := []string{"-redis-url", redis.URL, "-publish-token", token, "-log-level", "warn", "-history", "10000"}
	a := testenv.Start(t, args)
	b := testenv.Start(t, args)
	ready := make(chan struct{})
	result := make(chan map[string]int, 1)
	go func() { result <- collect(t, a.Addr, "", keys, ready) }()
	<-ready
	ids := storm(t, []string{a.Addr, b.Addr}, keys, copies, func() {
		// Halfway through, Redis goes away and comes back with its data (a clean stop
		// flushes the append-only file): retries that got a 503 or lost their answer
		// must find their key and not publish again.
		go func() {
			redis.Stop()
			time.Sleep(500 * time.Millisecond)
			redis.Start()
		}()
	})
	checkExactlyOnce(t, ids, <-result, keys)
	// A late retry of every key, after the storm, on the other node: still nothing new.
	again := storm(t, []string{b.Addr}, keys, 1, nil)
	for k, id := range again {
		if ids[k] != id {
			t.Errorf("late retry of %s: id %s, want %s", k, id, ids[k])
		}
	}
}
