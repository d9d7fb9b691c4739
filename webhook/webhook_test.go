package webhook_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/internal/testenv"
	"github.com/crierhq/crier/webhook"
)

var secret = []byte("webhook-test-secret")

func start(t *testing.T, opts webhook.Options) *webhook.Sender {
	t.Helper()
	opts.Secret = secret
	s, err := webhook.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

var epoch = time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)

// activity i is a connect of subscriber s<i> of user u<i>.
func activity(i int) broker.Activity {
	return broker.Activity{Kind: broker.ActivityConnect, Subscriber: fmt.Sprintf("s%d", i),
		User: fmt.Sprintf("u%d", i), Time: epoch.Add(time.Duration(i) * time.Millisecond)}
}

// metric reads a counter or gauge from reg.
func metric(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestBatchesAreSignedJSON(t *testing.T) {
	rc := testenv.NewWebhook(t, secret, nil)
	s := start(t, webhook.Options{URL: rc.Start() + "/hook?k=v"})

	in := []broker.Activity{
		{Kind: broker.ActivityConnect, Subscriber: "a1", User: "alice", Time: epoch},
		{Kind: broker.ActivityJoin, Subscriber: "a1", User: "alice", Topic: "room/1", Time: epoch.Add(time.Second)},
		{Kind: broker.ActivityLeave, Subscriber: "a1", User: "alice", Topic: "room/1", Time: epoch.Add(2 * time.Second)},
		{Kind: broker.ActivityDisconnect, Subscriber: "b2", User: "b2", Time: epoch.Add(3 * time.Second)},
	}
	for _, a := range in {
		s.Observe(a)
	}
	got := rc.Collect(t, len(in))
	for i, a := range in {
		g := got[i]
		when, err := time.Parse(time.RFC3339, g.Time)
		if g.Type != string(a.Kind) || g.Subscriber != a.Subscriber || g.User != a.User || err != nil || !when.Equal(a.Time) {
			t.Errorf("event %d: got %+v, want %+v", i, g, a)
		}
		rooms := a.Kind == broker.ActivityJoin || a.Kind == broker.ActivityLeave
		if rooms != (g.Topic != nil) || (rooms && *g.Topic != a.Topic) {
			t.Errorf("event %d (%s): topic %v, want it on room events only", i, g.Type, g.Topic)
		}
	}

	// The README's way to check a signature gives the same.
	openssl := testenv.Tool(t, "openssl")
	bodies, sigs := rc.Accepted()
	body, sig := bodies[0], sigs[0]
	file := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(openssl, "dgst", "-sha256", "-hmac", string(secret), "-r", file).Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	if hexsig := strings.Fields(string(out))[0]; "sha256="+hexsig != sig {
		t.Errorf("openssl says %s, the header %s", hexsig, sig)
	}
}

func TestRetriesAfterServerErrors(t *testing.T) {
	const failures = 3
	rc := testenv.NewWebhook(t, secret, func(n int) int {
		if n < failures {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	reg := prometheus.NewRegistry()
	s := start(t, webhook.Options{URL: rc.Start(), Registerer: reg, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	for i := range 5 {
		s.Observe(activity(i))
	}
	got := rc.Collect(t, 5)
	for i, g := range got {
		if g.Subscriber != activity(i).Subscriber {
			t.Errorf("event %d: %+v, want subscriber %s", i, g, activity(i).Subscriber)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	bodies, _ := rc.Accepted()
	batches := len(bodies)
	for name, want := range map[string]float64{
		"crier_webhook_batches_failed_total": failures,
		"crier_webhook_batches_sent_total":   float64(batches),
		"crier_webhook_events_sent_total":    5,
		"crier_webhook_dropped_total":        0,
	} {
		if got := metric(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// A backend that does not answer holds one batch in flight; the queue (which counts it)
// fills up behind it, and what does not fit is dropped, counted and logged once, while
// Observe keeps returning at once.
func TestOverflowIsCountedAndLoggedOnce(t *testing.T) {
	const queue, batch, extra = 10, 5, 25
	arrived, release := make(chan struct{}, 10), make(chan struct{})
	rc := testenv.NewWebhook(t, secret, func(int) int {
		arrived <- struct{}{}
		<-release
		return http.StatusOK
	})
	var logs testenv.Log
	reg := prometheus.NewRegistry()
	s := start(t, webhook.Options{URL: rc.Start(), Registerer: reg, Queue: queue, Batch: batch,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	s.Observe(activity(0))
	<-arrived // a first batch of one is in flight
	for i := 1; i < queue+extra; i++ {
		s.Observe(activity(i))
	}
	if got := metric(t, reg, "crier_webhook_dropped_total"); got != extra {
		t.Errorf("dropped %v, want %d", got, extra)
	}
	if got := metric(t, reg, "crier_webhook_queue_events"); got != queue {
		t.Errorf("queued %v, want %d", got, queue)
	}
	close(release)
	got := rc.Collect(t, queue)
	for i, g := range got {
		if g.Subscriber != activity(i).Subscriber {
			t.Errorf("event %d: %+v, want subscriber %s (the oldest are kept)", i, g, activity(i).Subscriber)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	ended := regexp.MustCompile(fmt.Sprintf(`overflow ended.* dropped=%d\n`, extra))
	if strings.Count(out, "webhook queue full") != 1 || !ended.MatchString(out) {
		t.Errorf("want one line when the overflow begins and one when it ends, with the count:\n%s", out)
	}
}

// Close sends what is queued; when the backend does not take it before ctx ends, Close
// gives up, and what was not sent is counted as dropped.
func TestCloseFlushesOrCounts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		timeout time.Duration
		lost    int
	}{
		{"backend up", http.StatusOK, time.Minute, 0},
		{"backend failing", http.StatusServiceUnavailable, 500 * time.Millisecond, 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := testenv.NewWebhook(t, secret, func(int) int { return tc.status })
			reg := prometheus.NewRegistry()
			s := start(t, webhook.Options{URL: rc.Start(), Registerer: reg, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
			for i := range 250 {
				s.Observe(activity(i))
			}
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			err := s.Close(ctx)
			if (err != nil) != (tc.lost > 0) {
				t.Errorf("Close: %v", err)
			}
			if got := metric(t, reg, "crier_webhook_events_sent_total"); got != float64(250-tc.lost) {
				t.Errorf("sent %v events, want %d", got, 250-tc.lost)
			}
			if got := metric(t, reg, "crier_webhook_dropped_total"); got != float64(tc.lost) {
				t.Errorf("dropped %v, want %d", got, tc.lost)
			}
			s.Observe(activity(250)) // after Close: dropped, counted, no panic
			if got := metric(t, reg, "crier_webhook_dropped_total"); got != float64(tc.lost+1) {
				t.Errorf("after Close, dropped %v, want %d", got, tc.lost+1)
			}
		})
	}
}

func TestBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts webhook.Options
	}{
		{"no URL", webhook.Options{Secret: secret}},
		{"not http", webhook.Options{URL: "ftp://example.com/x", Secret: secret}},
		{"relative", webhook.Options{URL: "/hook", Secret: secret}},
		{"no secret", webhook.Options{URL: "http://example.com/x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := webhook.New(tc.opts); err == nil {
				_ = s.Close(context.Background())
				t.Fatal("New accepted it")
			}
		})
	}
}
