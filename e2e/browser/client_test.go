package browser_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/crierhq/crier/internal/testenv"
)

// metric reads one unlabelled sample from crier's /metrics.
func metric(t *testing.T, p *testenv.Process, name string) float64 {
	t.Helper()
	resp, err := http.Get(p.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q: %v", name, v, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s in /metrics", name)
	return 0
}

// publisher publishes events n1..n<total> to a topic from a goroutine of its own, pace
// apart, so that a test can act while events are being published. The feed keeps 200
// items: total stays below that.
type publisher struct {
	quit chan struct{}
	done chan struct{}
	n    int // events published, read after done
}

func startPublisher(t *testing.T, srv *testenv.Process, topic string, total int, pace time.Duration) *publisher {
	p := &publisher{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for p.n < total {
			select {
			case <-p.quit:
				return
			default:
			}
			p.n++
			publishQuietly(t, srv, fmt.Sprintf(`{"topic":%q,"data":"n%d"}`, topic, p.n), fmt.Sprintf("%s-n%d", topic, p.n))
			time.Sleep(pace) // pacing, not a condition
		}
	}()
	return p
}

// publishQuietly is publish for goroutines other than the test's: it reports with Errorf.
// The idempotency key lets net/http send the request again when crier closed the idle
// connection it went out on (it did, on a loaded machine): crier keeps the event once.
func publishQuietly(t *testing.T, srv *testenv.Process, body, key string) {
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/publish", strings.NewReader(body))
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("publish %s: %v", body, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("publish %s: status %d", body, resp.StatusCode)
	}
}

// finish waits until every event is published and returns how many there were.
func (p *publisher) finish() int {
	<-p.done
	return p.n
}

// stop ends the publishing early and returns how many events were published.
func (p *publisher) stop() int {
	close(p.quit)
	return p.finish()
}

// numbered is a condition: the tab shows events n1..n<count> of the publisher, each once.
func numbered(count int) string {
	return fmt.Sprintf(`(() => {
		const got = texts("message").filter((x) => /^n\d+$/.test(x));
		const want = %d;
		return got.length === want && new Set(got).size === want &&
			got.every((x) => +x.slice(1) >= 1 && +x.slice(1) <= want);
	})()`, count)
}

// exactlyOnce waits for the last of count numbered events, then checks that the tab
// shows every one of them exactly once.
func exactlyOnce(t *testing.T, tb *tab, count int) {
	t.Helper()
	tb.waitFor(t, fmt.Sprintf("event n%d", count), fmt.Sprintf(`texts("message").includes("n%d")`, count))
	if !eval[bool](t, tb, numbered(count)) {
		got := eval[[]string](t, tb, `texts("message").filter((x) => /^n\d+$/.test(x)).reverse()`)
		t.Errorf("%s: want n1..n%d once each, got %d: %v", tb.name, count, len(got), got)
	}
}

// openTabs opens n tabs of rawURL one after the other, each live before the next opens.
func openTabs(t *testing.T, browser context.Context, n int, rawURL, init string) []*tab {
	t.Helper()
	var tabs []*tab
	for i := range n {
		tb := openTabWith(t, browser, fmt.Sprintf("tab %d", i+1), rawURL, init)
		tb.waitFor(t, "the page to be live", `state() === "live"`)
		tabs = append(tabs, tb)
	}
	return tabs
}

func TestTabsShareOneStream(t *testing.T) {
	t.Parallel()
	srv := startCrier(t)
	browser := newBrowser(t)
	tabs := openTabs(t, browser, 8, srv.URL+"/?topic=t", "")
	for _, tb := range tabs {
		tb.waitFor(t, "the stream shared by 8 tabs", `tabs() === "8" && sharing() === "worker" && /8 tabs/.test($("tabs").textContent)`)
	}
	if n := metric(t, srv, "crier_subscribers_attached_total"); n != 1 {
		t.Errorf("streams opened = %v for 8 tabs, want 1", n)
	}
	if n := metric(t, srv, "crier_subscribers"); n != 1 {
		t.Errorf("open streams = %v for 8 tabs, want 1", n)
	}

	const count = 20
	for i := 1; i <= count; i++ {
		publish(t, srv, fmt.Sprintf(`{"topic":"t","data":"n%d"}`, i))
	}
	for _, tb := range tabs {
		exactlyOnce(t, tb, count)
		tb.assertClean(t)
	}
}

func TestTabsGetOnlyTheirTopics(t *testing.T) {
	t.Parallel()
	srv := startCrier(t)
	browser := newBrowser(t)
	a := openTab(t, browser, "tab a", srv.URL+"/?topic=a")
	b := openTab(t, browser, "tab b", srv.URL+"/?topic=b")
	a.waitFor(t, "two tabs on the stream", `tabs() === "2"`)

	publish(t, srv, `{"topic":"a","data":"for a"}`)
	publish(t, srv, `{"topic":"b","data":"for b"}`)
	publish(t, srv, `{"data":"for everyone"}`)
	for _, tc := range []struct {
		tb        *tab
		own, peer string
	}{{a, "for a", "for b"}, {b, "for b", "for a"}} {
		tc.tb.waitFor(t, "its own event and the broadcast", fmt.Sprintf(`texts("message").includes(%s) && texts("message").includes("for everyone")`, js(tc.own)))
		if eval[bool](t, tc.tb, fmt.Sprintf(`texts("message").includes(%s)`, js(tc.peer))) {
			t.Errorf("%s got %q, published to the other tab's topic", tc.tb.name, tc.peer)
		}
	}
	if n := metric(t, srv, "crier_subscribers"); n != 1 {
		t.Errorf("open streams = %v for 2 tabs, want 1", n)
	}

	// b follows a as well: the shared stream already carries it, b now shows it too.
	b.do(t, "follow a and b",
		chromedp.SetValue(chromedp.CSS(`#topics`), "a, b"),
		chromedp.Click(chromedp.CSS(`#follow button[type=submit]`)))
	publish(t, srv, `{"topic":"a","data":"a again"}`)
	for _, tb := range []*tab{a, b} {
		tb.waitFor(t, "the second event for a", `texts("message").includes("a again")`)
	}
	a.assertClean(t)
	b.assertClean(t)
}

// TestLeaderTakesOver runs the client as in a browser without SharedWorker: the tabs
// elect a leader that holds the stream. The leader closes while events are published;
// another tab takes over from the last id, and no tab loses or repeats an event.
func TestLeaderTakesOver(t *testing.T) {
	t.Parallel()
	srv := startCrier(t)
	browser := newBrowser(t)
	tabs := openTabs(t, browser, 3, srv.URL+"/?topic=t", withoutSharedWorker)
	for _, tb := range tabs {
		tb.waitFor(t, "three tabs on one stream", `tabs() === "3"`)
	}
	leader, followers := tabs[0], tabs[1:]
	if got := eval[string](t, leader, `sharing()`); got != "leader" {
		t.Fatalf("the first tab is %q, want the leader", got)
	}
	for _, tb := range followers {
		if got := eval[string](t, tb, `sharing()`); got != "follower" {
			t.Fatalf("%s is %q, want a follower", tb.name, got)
		}
	}

	pub := startPublisher(t, srv, "t", 120, 20*time.Millisecond)
	for _, tb := range followers {
		tb.waitFor(t, "the first events", `texts("message").includes("n5")`)
	}
	leader.close(t)
	for _, tb := range followers {
		tb.waitFor(t, "the stream again, from a new leader of two tabs", `tabs() === "2" && state() === "live"`)
	}
	leaders := 0
	for _, tb := range followers {
		if eval[string](t, tb, `sharing()`) == "leader" {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d leaders after the first closed, want 1", leaders)
	}
	count := pub.finish()
	for _, tb := range followers {
		exactlyOnce(t, tb, count)
		if eval[bool](t, tb, `items("missed").length > 0`) {
			t.Errorf("%s got a missed notice", tb.name)
		}
		tb.assertClean(t)
	}
	if n := metric(t, srv, "crier_subscribers"); n != 1 {
		t.Errorf("open streams = %v after the takeover, want 1", n)
	}
}

// TestReloadResumes reloads the only tab while events are published: the page comes back
// with the feed it had (kept in sessionStorage) and the client resumes from the last id
// it saw, so the feed ends up with every event exactly once and no missed notice.
func TestReloadResumes(t *testing.T) {
	t.Parallel()
	srv := startCrier(t)
	browser := newBrowser(t)
	a := openTab(t, browser, "tab", srv.URL+"/?topic=t")
	pub := startPublisher(t, srv, "t", 120, 20*time.Millisecond)
	a.waitFor(t, "the first events", `texts("message").includes("n5")`)
	reload(t, a)
	count := pub.finish()
	exactlyOnce(t, a, count)
	if eval[bool](t, a, `items("missed").length > 0`) {
		t.Errorf("the reload produced a missed notice")
	}
	a.assertClean(t)
}

// TestReloadsInTurn reloads two tabs of one topic in turn, a, b, a, b..., each as soon as
// the other is live again, while events are published, with the shared worker and with a
// leader tab. Every reload moves the stream's bookkeeping around: a tab leaves the worker
// or the leader's hub and a new one comes back with the id it saved; without a shared
// worker the leader itself goes and another tab takes over. Both tabs end up showing every
// event once, live, and the browser holds one stream.
func TestReloadsInTurn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, init string
		roles      []string // the tabs' sharing, sorted
	}{
		{"worker", "", []string{"worker", "worker"}},
		{"leader", withoutSharedWorker, []string{"follower", "leader"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startCrier(t)
			browser := newBrowser(t)
			tabs := openTabs(t, browser, 2, srv.URL+"/?topic=t", tc.init)
			tabs[1].waitFor(t, "two tabs on one stream", `tabs() === "2"`)
			pub := startPublisher(t, srv, "t", 150, 50*time.Millisecond)
			tabs[1].waitFor(t, "the first events", `texts("message").includes("n3")`)
			for i := range 6 {
				reload(t, tabs[i%2])
			}
			count := pub.stop()
			t.Logf("%d events published during 6 reloads", count)
			for _, tb := range tabs {
				tb.waitFor(t, "both tabs on the stream", `tabs() === "2" && state() === "live"`)
				exactlyOnce(t, tb, count)
				if eval[bool](t, tb, `items("missed").length > 0`) {
					t.Errorf("%s got a missed notice", tb.name)
				}
				tb.assertClean(t)
			}
			roles := []string{eval[string](t, tabs[0], `sharing()`), eval[string](t, tabs[1], `sharing()`)}
			if slices.Sort(roles); !slices.Equal(roles, tc.roles) {
				t.Errorf("the tabs share the stream as %v, want %v", roles, tc.roles)
			}
			testenv.Eventually(t, wait, func() error {
				if n := metric(t, srv, "crier_subscribers"); n != 1 {
					return fmt.Errorf("%v streams open for one browser, want 1", n)
				}
				return nil
			})
		})
	}
}

// reload reloads the tab and waits until the new document is live.
func reload(t *testing.T, tb *tab) {
	t.Helper()
	tb.do(t, "mark the document", chromedp.Evaluate[chromedp.Void](`window.before = true`))
	tb.do(t, "reload", chromedp.Reload())
	tb.waitFor(t, "the reloaded page, live", `window.before === undefined && state() === "live"`)
}

// TestRetryAfterIsHonoured: crier at -max-subscribers answers 503 with Retry-After: 2 (its
// -retry). The client retries no sooner than that, shows why it waits, and goes live once
// the slot is free.
func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	srv := testenv.Start(t, []string{"-publish-token", token, "-retry", "2s", "-max-subscribers", "1"})
	held, err := http.Get(srv.URL + "/events")
	if err != nil || held.StatusCode != http.StatusOK {
		t.Fatalf("the stream that takes the only slot: %v", err)
	}
	defer held.Body.Close()
	probe, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	probe.Body.Close()
	if probe.StatusCode != http.StatusServiceUnavailable || probe.Header.Get("Retry-After") != "2" {
		t.Fatalf("a second stream: %d, Retry-After %q; want 503 and 2", probe.StatusCode, probe.Header.Get("Retry-After"))
	}

	browser := newBrowser(t)
	// Without a SharedWorker the stream is fetched by the page, where the test sees it.
	a := openTabWith(t, browser, "tab", srv.URL+"/", withoutSharedWorker)
	a.allow("503", "/events")
	a.waitFor(t, "three refused attempts", `window.streamRequests.length >= 3 && state() === "reconnecting" && /503/.test($("state-detail").textContent)`)
	held.Body.Close()
	a.waitFor(t, "the stream once the slot is free", `state() === "live"`)

	gaps := eval[[]float64](t, a, `window.streamRequests.slice(1).map((at, i) => at - window.streamRequests[i])`)
	for i, g := range gaps {
		if g < 2000 {
			t.Errorf("attempt %d came %.0f ms after a 503 with Retry-After: 2", i+2, g)
		}
	}
	t.Logf("waits after each 503: %.0f ms", gaps)
	a.assertClean(t)
}
