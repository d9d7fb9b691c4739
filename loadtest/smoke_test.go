package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/crierhq/crier/internal/testenv"
)

// runOn starts a real crier with crierArgs and runs the tool against it with args; it
// returns the tool's exit code, its result (the last line of stdout), that line and
// what the tool wrote to stderr, which it also logs.
func runOn(t *testing.T, crierArgs []string, args ...string) (int, result, string, string) {
	t.Helper()
	srv := testenv.Start(t, append([]string{"-publish-token", "tool-token"}, crierArgs...))
	var stdout, stderr bytes.Buffer
	code := run(append(append(args[:1:1], "-target", srv.URL, "-token", "tool-token",
		"-pid", strconv.Itoa(srv.Cmd.Process.Pid)), args[1:]...), &stdout, &stderr)
	t.Logf("loadtest stderr:\n%s", stderr.String())
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	last := lines[len(lines)-1]
	var res result
	if err := json.Unmarshal([]byte(last), &res); err != nil {
		t.Fatalf("last line %q is not JSON: %v", last, err)
	}
	return code, res, last, stderr.String()
}

// TestSmoke runs the smoke scenario against a real crier and checks that the tool
// worked: streams opened, events arrived, nothing was lost, and the last line parses.
// It asserts no timing: benchmarks are not tests.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server")
	}
	code, res, last, stderr := runOn(t, []string{"-heartbeat", "1s"}, "smoke", "-streams", "200", "-duration", "2s")
	if code != 0 || res.OK == nil || !*res.OK {
		t.Fatalf("exit %d, result %s", code, last)
	}
	want := []string{"idle", "fanout", "saturate", "publish-latency", "presence", "herd", "overload"}
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
	if !strings.Contains(stderr, "opened 200/200 streams") {
		t.Errorf("stderr does not report the streams opening")
	}
}
