package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/crierhq/crier/internal/testenv"
)

// TestSmoke runs the smoke scenario against a real crier and checks that the tool
// worked: streams opened, events arrived, nothing was lost, and the last line parses.
// It asserts no timing: benchmarks are not tests.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server")
	}
	srv := testenv.Start(t, []string{"-publish-token", "smoke-token", "-heartbeat", "1s"})
	var stdout, stderr bytes.Buffer
	code := run([]string{"smoke", "-target", srv.URL, "-token", "smoke-token",
		"-pid", strconv.Itoa(srv.Cmd.Process.Pid), "-streams", "200", "-duration", "2s"}, &stdout, &stderr)
	t.Logf("loadtest stderr:\n%s", stderr.String())
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line %q is not JSON: %v", lines[len(lines)-1], err)
	}
	if code != 0 || res.OK == nil || !*res.OK {
		t.Fatalf("exit %d, result %s", code, lines[len(lines)-1])
	}
	want := []string{"idle", "fanout", "saturate", "publish-latency", "presence", "herd"}
	if len(res.Phases) != len(want) {
		t.Fatalf("%d phases, want %d", len(res.Phases), len(want))
	}
	for i, ph := range res.Phases {
		if ph.Scenario != want[i] {
			t.Errorf("phase %d is %q, want %q", i, ph.Scenario, want[i])
		}
		if ph.Streams == 0 || ph.FailedStreams+ph.RefusedStreams+ph.DroppedStreams != 0 {
			t.Errorf("%s: %d streams open, %d failed, %d refused, %d dropped",
				ph.Scenario, ph.Streams, ph.FailedStreams, ph.RefusedStreams, ph.DroppedStreams)
		}
		if ph.Lost != 0 || ph.Duplicates != 0 || ph.IDRegressions != 0 {
			t.Errorf("%s: lost %d, duplicates %d, id regressions %d", ph.Scenario, ph.Lost, ph.Duplicates, ph.IDRegressions)
		}
		switch ph.Scenario {
		case "idle":
			if ph.RSSAfterKiB == 0 {
				t.Errorf("idle: no RSS reading")
			}
		case "herd":
			if ph.Live != ph.Streams || ph.Resumed != ph.Streams || ph.Missed != 0 {
				t.Errorf("herd: of %d streams %d live, %d resumed, %d missed", ph.Streams, ph.Live, ph.Resumed, ph.Missed)
			}
			fallthrough
		case "presence":
			if ph.Deliveries != ph.PresenceExpected || ph.PresenceExpected == 0 {
				t.Errorf("presence: %d of %d new_user deliveries", ph.Deliveries, ph.PresenceExpected)
			}
		default:
			if ph.Published == 0 || ph.Deliveries != ph.Expected {
				t.Errorf("%s: published %d, delivered %d of %d", ph.Scenario, ph.Published, ph.Deliveries, ph.Expected)
			}
		}
	}
	if !strings.Contains(stderr.String(), "opened 200/200 streams") {
		t.Errorf("stderr does not report the streams opening")
	}
}
