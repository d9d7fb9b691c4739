package main

import (
	"strconv"
	"testing"
)

// TestRoomHerd: 2,000 streams arrive in one room, 50 at a time, on a real crier with
// the default -buffer. Each is an anonymous user of its own, so every arrival is a join
// for everyone already in the room (2,001,000 joins in all): every one must arrive, and
// no stream may be cut off. It asserts no timing; BENCHMARKS.md has the figures.
func TestRoomHerd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server and 2,000 streams")
	}
	const streams = 2000
	code, res, last, _ := runOn(t, []string{"-presence=false", "-presence-topics", "room/*"},
		"presence", "-topic", "room/herd", "-event", "join", "-sequential", "0", "-streams", strconv.Itoa(streams), "-batch", "50")
	const want = streams * (streams + 1) / 2
	if code != 0 || res.Error != "" {
		t.Fatalf("exit %d, result %s", code, last)
	}
	if res.Deliveries != want || res.PresenceExpected != want || res.PresenceIncomplete {
		t.Errorf("%d of %d joins delivered (expected %d)", res.Deliveries, want, res.PresenceExpected)
	}
	if res.FailedStreams+res.RefusedStreams+res.DroppedStreams != 0 {
		t.Errorf("%d streams failed, %d refused, %d cut off", res.FailedStreams, res.RefusedStreams, res.DroppedStreams)
	}
}
