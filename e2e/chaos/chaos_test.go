// Package chaos_test checks crier's zero-loss promise on real processes: subscribers that
// keep dropping their connections (resets and clean closes) and resuming with
// Last-Event-ID while events are published end with every event of their topics, in
// order, none twice; on one node, and on three nodes over Redis while one node is killed
// and Redis restarts.
//
// CI runs a short version; CRIER_LONG=1 runs 200 subscribers and 50,000 events.
package chaos_test

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/crierhq/crier/internal/testenv"
)

func TestZeroLossSingleNode(t *testing.T) {
	sc := scaleFor(t)
	node := testenv.Start(t, []string{"-publish-token", token, "-log-level", "warn", "-heartbeat", "1s",
		// Large enough that nothing is legitimately missed: a missed notice fails the run.
		"-history", strconv.Itoa(sc.events + 1000), "-buffer", strconv.Itoa(sc.events + 1000)})
	r := newRun(t, sc, []string{node.Addr})
	r.execute(nil)
}

func TestZeroLossClusterWithKilledNodeAndRedisRestart(t *testing.T) {
	sc := scaleFor(t)
	redis := testenv.StartRedis(t)
	args := []string{"-redis-url", redis.URL, "-publish-token", token, "-log-level", "warn", "-heartbeat", "1s",
		// The log keeps presence entries too: room for all of them, so that nothing is
		// legitimately missed and a missed notice fails the run.
		"-history", strconv.Itoa(4*sc.events + 20000), "-buffer", strconv.Itoa(sc.events + 1000)}
	var addrs []string
	var procs []*testenv.Process
	for range 3 {
		p := testenv.Start(t, args)
		procs = append(procs, p)
		addrs = append(addrs, p.Addr)
	}
	r := newRun(t, sc, addrs)
	victim := procs[2]
	r.execute(func() {
		r.waitPublished(sc.events * 3 / 10)
		victim.Signal(syscall.SIGKILL)
		r.nodes.remove(victim.Addr)
		t.Logf("killed node %s after %d events", victim.Addr, r.published.Load())

		r.waitPublished(sc.events * 6 / 10)
		// Clients keep reconnecting through the outage, also to nodes that have not
		// read up to their last id: that must lose and repeat nothing.
		redis.Stop()
		t.Logf("stopped Redis after %d events", r.published.Load())
		time.Sleep(time.Second) // the outage's length: clients reconnect throughout it
		redis.Start()
		for _, p := range procs[:2] {
			waitReady(t, p.URL)
		}
		t.Logf("Redis back, nodes ready; %d events published meanwhile", r.published.Load())
	})
}

// waitReady waits until the node at url answers /readyz with 200. It runs beside the
// publishers, not on the test's goroutine, so it reports with Errorf.
func waitReady(t *testing.T, url string) {
	if err := testenv.Poll(30*time.Second, func() error { return testenv.GetOK(nil, url+"/readyz") }); err != nil {
		t.Errorf("%s not ready 30s after Redis came back: %v", url, err)
	}
}
