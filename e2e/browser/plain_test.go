package browser_test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/crierhq/crier/internal/testenv"
)

// withoutFetchStreams makes a tab's browser unable to read a fetch response as a stream,
// as browsers were before fetch streams: the page follows /events with the plain
// EventSource. It records the URL of every EventSource the page opens and counts the
// page's fetches of /events.
const withoutFetchStreams = `
delete Response.prototype.body;
delete window.ReadableStream;
delete window.TextDecoderStream;
window.eventSources = [];
window.streamFetches = 0;
const RealEventSource = window.EventSource;
window.EventSource = class extends RealEventSource {
  constructor(url, init) {
    super(url, init);
    window.eventSources.push(String(url));
  }
};
const realFetch = window.fetch;
window.fetch = function (url, ...rest) {
  if (String(url).includes("/events")) window.streamFetches++;
  return realFetch.call(this, url, ...rest);
};`

// TestPlainEventSourceFallback runs the page in a browser that cannot read a fetch
// response as a stream. The page follows /events with an EventSource of its own, shows
// what is published, and resumes where it was after a reload (with the id it kept in
// sessionStorage) and after crier ends the stream (a restart on the same Redis, which keeps
// the history): every event once, no missed notice.
func TestPlainEventSourceFallback(t *testing.T) {
	t.Parallel()
	redis := testenv.StartRedis(t)
	args := append(crierArgs(), "-redis-url", redis.URL, "-reconnect-spread", "1s")
	srv := testenv.Start(t, args)
	browser := newBrowser(t)
	a := openTabWith(t, browser, "tab", srv.URL+"/?topic=t", withoutFetchStreams)
	a.waitFor(t, "the page live on an EventSource", `state() === "live" && sharing() === "none" && window.eventSources.length === 1`)

	pub := startPublisher(t, srv, "t", 60, 20*time.Millisecond)
	a.waitFor(t, "the first events", `texts("message").includes("n5")`)
	reload(t, a)
	if got := eval[[]string](t, a, `window.eventSources`); len(got) != 1 || !strings.Contains(got[0], "lastEventId=") {
		t.Errorf("EventSources after the reload: %q, want one that resumes with lastEventId", got)
	}
	count := pub.finish()
	exactlyOnce(t, a, count)

	// crier ends the stream and comes back on the same address. The page's EventSource
	// reconnects by itself with Last-Event-ID; the events published before it is back are
	// replayed from Redis.
	a.do(t, "mark the document", chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`))
	srv.Signal(syscall.SIGTERM)
	a.waitFor(t, "the reconnecting state", `state() === "reconnecting"`)
	if code, err := srv.Wait(15 * time.Second); err != nil || code != 0 {
		t.Fatalf("crier after SIGTERM: exit %d, %v", code, err)
	}
	srv = testenv.StartAt(t, srv.Addr, args)
	const after = 5
	for i := 1; i <= after; i++ {
		publish(t, srv, fmt.Sprintf(`{"topic":"t","data":"n%d"}`, count+i))
	}
	a.waitFor(t, "live again", `state() === "live"`)
	exactlyOnce(t, a, count+after)

	if !eval[bool](t, a, `window.sameDocument === true`) {
		t.Errorf("the page was reloaded; it should reconnect in place")
	}
	if eval[bool](t, a, `items("missed").length > 0`) {
		t.Errorf("the page got a missed notice")
	}
	if n := eval[int](t, a, `window.streamFetches`); n != 0 {
		t.Errorf("the page fetched /events %d times, want only EventSource", n)
	}
	a.assertClean(t)
}
