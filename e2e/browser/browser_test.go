// Package browser_test drives crier's web page and its browser client (/crier.js) in a
// real headless Chromium: the page served by the real crier binary, the client's one
// shared stream against the real /events.
//
// Each test starts its own crier process and its own browser, so the tests run in
// parallel. Set CRIER_SCREENSHOT=1 to write docs/screenshot.png (desktop) and
// docs/screenshot-phone.png (390x844) from the publish test.
package browser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/crierhq/crier/internal/testenv"
)

const token = "browser-e2e-token"

// wait is the deadline for one condition on the page. Most conditions hold within
// milliseconds and a restart of the server takes a second or two, but under CI's load (a
// 2-core machine running the cluster and chaos tests next to eight Chromium tabs) opening
// one tab took over 15 seconds: the deadline only bounds how long a failure takes.
const wait = 60 * time.Second

// startCrier runs the real binary with a known publish token and a short retry, so
// that the page reconnects quickly in the restart test.
func startCrier(t *testing.T) *testenv.Process {
	t.Helper()
	return testenv.Start(t, crierArgs())
}

func crierArgs() []string {
	return []string{"-publish-token", token, "-retry", "500ms", "-log-level", "debug"}
}

// newBrowser starts a headless Chromium with a fresh profile and returns a context
// for opening tabs in it. The browser stops when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := testenv.Tool(t, "chromium", "chromium-browser", "google-chrome")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1280, 860),
		// Keep the browser off the network: the page must need nothing but crier.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Several tabs are open at once; none of them may be throttled as hidden.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx); err != nil {
		if testenv.CI() {
			t.Fatalf("start chromium: %v", err)
		}
		t.Skipf("chromium does not start here: %v", err)
	}
	return bctx
}

// tab is one open page. It records console errors, uncaught exceptions, error log
// entries and every request whose host is not the loopback address.
type tab struct {
	name   string
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	allowed  [][]string // errors a test provoked on purpose, by their parts
	errs     []string   // console errors and exceptions
	foreign  []string   // request URLs that would leave 127.0.0.1
	requests []string   // every request URL, in order
}

// openTab opens rawURL in a new tab of the browser and waits until the page is live.
func openTab(t *testing.T, browser context.Context, name, rawURL string) *tab {
	t.Helper()
	tb := openTabWith(t, browser, name, rawURL, "")
	tb.waitFor(t, "the page to be live", `state() === "live"`)
	return tb
}

// withoutSharedWorker makes a tab's browser lack SharedWorker, as Chrome on Android does:
// the client elects a leader tab instead. It also records when the page asks for a stream.
const withoutSharedWorker = `
delete window.SharedWorker;
window.streamRequests = [];
const realFetch = window.fetch;
window.fetch = function (url, ...rest) {
  if (String(url).includes("/events")) window.streamRequests.push(performance.now());
  return realFetch.call(this, url, ...rest);
};`

// openTabWith opens rawURL in a new tab after installing init, a script that runs in
// every document of the tab before the page's own; it does not wait for the stream.
func openTabWith(t *testing.T, browser context.Context, name, rawURL, init string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	tb := &tab{name: name, ctx: ctx, cancel: cancel}
	t.Cleanup(cancel)
	if err := chromedp.Listen(ctx, tb.record); err != nil {
		t.Fatalf("%s: listen: %v", name, err)
	}
	nctx, ncancel := context.WithTimeout(ctx, wait)
	defer ncancel()
	var steps []chromedp.Action[chromedp.Void]
	if init != "" {
		steps = append(steps, chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
			_, err := cdp.Call(ctx, tgt, page.AddScriptToEvaluateOnNewDocument,
				page.AddScriptToEvaluateOnNewDocumentParams{Source: init})
			return err
		}))
	}
	steps = append(steps, chromedp.Navigate(rawURL))
	if err := chromedp.Do(nctx, steps...); err != nil {
		t.Fatalf("%s: open %s: %v", name, rawURL, err)
	}
	return tb
}

// record runs on chromedp's reading goroutine: it only appends under the lock.
func (tb *tab) record(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				if a.Description != "" {
					parts = append(parts, a.Description)
				} else {
					parts = append(parts, string(a.Value))
				}
			}
			tb.errs = append(tb.errs, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(parts, " ")))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		tb.errs = append(tb.errs, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, text))
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			tb.errs = append(tb.errs, fmt.Sprintf("log %s: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	case *network.EventRequestWillBeSent:
		u := ev.Request.URL
		tb.requests = append(tb.requests, u)
		if !loopback(u) {
			tb.foreign = append(tb.foreign, u)
		}
	}
}

func loopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "http", "https", "ws", "wss":
	default:
		return false
	}
	return u.Hostname() == "127.0.0.1"
}

// allow declares an error the test provokes on purpose, such as Chromium's log line
// for a 403 answer, so that assertClean ignores entries containing every part.
func (tb *tab) allow(parts ...string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.allowed = append(tb.allowed, parts)
}

func (tb *tab) isAllowed(e string) bool {
	for _, parts := range tb.allowed {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(e, p) }) {
			return true
		}
	}
	return false
}

// assertClean fails the test if the tab logged an error it did not allow, or asked
// for anything off the loopback address.
func (tb *tab) assertClean(t *testing.T) {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, e := range tb.errs {
		if tb.isAllowed(e) {
			t.Logf("%s: expected: %s", tb.name, e)
			continue
		}
		t.Errorf("%s: %s", tb.name, e)
	}
	for _, u := range tb.foreign {
		t.Errorf("%s: request leaves 127.0.0.1: %s", tb.name, u)
	}
}

func (tb *tab) requested(path string) bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, r := range tb.requests {
		if u, err := url.Parse(r); err == nil && u.Path == path {
			return true
		}
	}
	return false
}

// helpers is prepended to every condition so that conditions read like sentences.
const helpers = `
const $ = (id) => document.getElementById(id);
const state = () => $("state").textContent.trim();
const count = () => $("count").textContent.trim();
const tabs = () => $("tabs").dataset.tabs;
const sharing = () => $("tabs").dataset.sharing;
const items = (type) => [...document.querySelectorAll("#feed > li" + (type ? "[data-event='" + type + "']" : ""))];
const has = (type, text) => items(type).some((li) => li.textContent.toLowerCase().includes(text.toLowerCase()));
const texts = (type) => items(type).map((li) => li.querySelector(".text")?.textContent ?? "");
`

// waitFor polls cond, a JavaScript expression, until it is true or wait passes.
func (tb *tab) waitFor(t *testing.T, what, cond string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, wait)
	defer cancel()
	expr := "(() => {" + helpers + "return !!(" + cond + ");})()"
	err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(wait)))
	if err != nil {
		t.Fatalf("%s: waiting for %s (%s): %v\npage: %s", tb.name, what, cond, err, tb.snapshot())
	}
}

// eval runs a JavaScript expression (with the helpers) and decodes its value.
func eval[T any](t *testing.T, tb *tab, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, wait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T]("(() => {"+helpers+"return ("+expr+");})()"))
	if err != nil {
		t.Fatalf("%s: evaluate %s: %v", tb.name, expr, err)
	}
	return v
}

// snapshot describes the page for a failure message; it never fails itself.
func (tb *tab) snapshot() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {`+helpers+`
		return JSON.stringify({
			state: state(), detail: $("state-detail").textContent, count: count(),
			tabs: tabs(), sharing: sharing(), url: location.href,
			result: $("publish-result").textContent,
			feed: items().slice(0, 10).map((li) => li.dataset.event + ": " + li.textContent.replace(/\s+/g, " ").trim()),
		});
	})()`))
	if err != nil {
		return "(unavailable: " + err.Error() + ")"
	}
	return s
}

// do runs actions in the tab with a deadline.
func (tb *tab) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, wait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %s: %v\npage: %s", tb.name, what, err, tb.snapshot())
	}
}

// close closes the tab, which ends its stream.
func (tb *tab) close(t *testing.T) {
	t.Helper()
	tb.cancel()
}

// publish posts one JSON event to crier and returns its id.
func publish(t *testing.T, p *testenv.Process, body string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.URL+"/publish", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("publish %s: %v", body, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish %s: status %d: %s", body, resp.StatusCode, raw)
	}
	var answer struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil || answer.ID == "" {
		t.Fatalf("publish %s: answer %s: want {\"id\": \"...\"} (%v)", body, raw, err)
	}
	return answer.ID
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestPageLoadsCleanly(t *testing.T) {
	t.Parallel()
	srv := startCrier(t)
	browser := newBrowser(t)
	a := openTab(t, browser, "tab", srv.URL+"/")

	// The page's own arrival is announced to it, with the count.
	a.waitFor(t, "its own presence event", `has("new_user", "new user connected") && count() === "1"`)
	if got := eval[string](t, a, `document.title`); !strings.Contains(got, "crier") {
		t.Errorf("title = %q, want it to name crier", got)
	}
	if !eval[bool](t, a, `[...document.styleSheets].length > 0 && [...document.styleSheets].every((s) => s.cssRules.length > 0)`) {
		t.Errorf("style sheet not applied")
	}
	for _, path := range []string{"/", "/static/app.js", "/static/style.css", "/crier.js"} {
		if !a.requested(path) {
			t.Errorf("the page never requested %s", path)
		}
	}
	// Hooks and labels the tests and screen readers rely on.
	if got := eval[string](t, a, `$("feed").getAttribute("aria-live")`); got != "polite" {
		t.Errorf(`#feed aria-live = %q, want "polite"`, got)
	}
	unlabelled := eval[[]string](t, a, `[...document.querySelectorAll("input, textarea")].filter((e) => !e.labels || e.labels.length === 0).map((e) => e.id)`)
	if len(unlabelled) > 0 {
		t.Errorf("inputs without a label: %v", unlabelled)
	}

	// Event data is text, never markup.
	publish(t, srv, `{"data":"<img src=x onerror=\"window.pwned=1\"><b id=injected>bold</b>"}`)
	a.waitFor(t, "the markup payload as text", `has("message", "<b id=injected>")`)
	if eval[bool](t, a, `window.pwned === 1 || document.getElementById("injected") !== null || $("feed").querySelector("img") !== null`) {
		t.Errorf("event data was rendered as HTML")
	}

	a.assertClean(t)
}

// otherBrowser returns a context for tabs in a browser context of their own (storage,
// workers and locks apart): to crier, another browser.
func otherBrowser(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new browser context: %v", err)
	}
	return ctx
}

func TestPresenceAcrossBrowsers(t *testing.T) {
	t.Parallel()
	srv := startCrier(t)
	browser := newBrowser(t)

	a := openTab(t, browser, "first browser", srv.URL+"/")
	a.waitFor(t, "a count of 1", `count() === "1"`)

	b := openTab(t, otherBrowser(t, browser), "second browser", srv.URL+"/")
	a.waitFor(t, "the second browser's arrival", `has("new_user", "new user connected") && items("new_user").length >= 2 && count() === "2"`)
	b.waitFor(t, "a count of 2", `count() === "2"`)

	b.close(t)
	a.waitFor(t, "the second browser's departure", `has("user_left", "user disconnected") && count() === "1"`)

	// Newest first: the departure tops the feed.
	if got := eval[string](t, a, `items()[0].dataset.event`); got != "user_left" {
		t.Errorf("first feed item is %q, want user_left (newest first)", got)
	}
	a.assertClean(t)
}

func TestPublishReachesEveryTab(t *testing.T) {
	t.Parallel()
	srv := startCrier(t)
	browser := newBrowser(t)
	a := openTab(t, browser, "first tab", srv.URL+"/")
	b := openTab(t, browser, "second tab", srv.URL+"/?topic=orders")
	a.waitFor(t, "both tabs on one stream", `tabs() === "2"`)

	// A broadcast over HTTP reaches both tabs, as readable text plus the JSON.
	publish(t, srv, `{"data":{"message":"deploy finished","version":"1.4.2"}}`)
	for _, tb := range []*tab{a, b} {
		tb.waitFor(t, "the broadcast", `has("message", "deploy finished") && has("message", "1.4.2")`)
	}

	// A topic event reaches only the tab that follows the topic, though both tabs share
	// the stream. The broadcast that follows it proves the first tab would have seen it.
	publish(t, srv, `{"topic":"orders","event":"order_shipped","data":"order 17 shipped"}`)
	b.waitFor(t, "the orders event", `has("order_shipped", "order 17 shipped")`)
	publish(t, srv, `{"data":"after the order"}`)
	a.waitFor(t, "the later broadcast", `has("message", "after the order")`)
	if eval[bool](t, a, `has("order_shipped", "order 17 shipped")`) {
		t.Errorf("a tab that follows no topic got an event published to orders")
	}

	// A wrong token is refused, and the page says why. Chromium logs the 403 of
	// any fetch; that one line is expected.
	a.allow("403", "/publish")
	a.do(t, "publish with a wrong token",
		chromedp.SetValue(chromedp.CSS(`#token`), "wrong"),
		chromedp.SetValue(chromedp.CSS(`#pub-event`), "greeting"),
		chromedp.SetValue(chromedp.CSS(`#pub-data`), `{"text":"hello from the page"}`),
		chromedp.Click(chromedp.CSS(`#publish button[type=submit]`)))
	a.waitFor(t, "the refusal", `$("publish-result").dataset.outcome === "error" && /40[13]/.test($("publish-result").textContent)`)

	a.do(t, "publish through the form",
		chromedp.SetValue(chromedp.CSS(`#token`), token),
		chromedp.Click(chromedp.CSS(`#publish button[type=submit]`)))
	a.waitFor(t, "the id in the answer", `$("publish-result").dataset.outcome === "ok" && /id \S+/.test($("publish-result").textContent)`)
	for _, tb := range []*tab{a, b} {
		tb.waitFor(t, "the event published by the form", `has("greeting", "hello from the page")`)
	}
	// The token stays in this tab's session, never in localStorage.
	if got := eval[string](t, a, `sessionStorage.getItem("crier.token")`); got != token {
		t.Errorf("token in sessionStorage = %q, want %q", got, token)
	}
	if n := eval[int](t, a, `localStorage.length`); n != 0 {
		t.Errorf("localStorage holds %d entries, want none", n)
	}

	a.assertClean(t)
	b.assertClean(t)

	if os.Getenv("CRIER_SCREENSHOT") != "" {
		screenshots(t, a)
	}
}

// screenshots writes the page into docs/: at a desktop size, at a phone size, and
// at the desktop size in the dark colour scheme.
func screenshots(t *testing.T, tb *tab) {
	t.Helper()
	dir := filepath.Join(testenv.Root(), "docs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("screenshots: %v", err)
		return
	}
	phone := []chromedp.EmulateViewportOption{chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch}
	shots := []struct {
		file          string
		width, height int64
		scheme        string
		opts          []chromedp.EmulateViewportOption
	}{
		{"screenshot.png", 1280, 860, "light", nil},
		{"screenshot-phone.png", 390, 844, "light", phone},
		{"screenshot-dark.png", 1280, 860, "dark", nil},
	}
	for _, s := range shots {
		ctx, cancel := context.WithTimeout(tb.ctx, wait)
		scheme := chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
			_, err := cdp.Call(ctx, tgt, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: s.scheme}},
			})
			return err
		})
		// Blur the button, scroll to the top and let the layout settle before the shot.
		err := chromedp.Do(ctx,
			chromedp.EmulateViewport(s.width, s.height, s.opts...),
			scheme,
			chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)`),
			chromedp.Evaluate[chromedp.Void](`new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, chromedp.EvalAwaitPromise))
		var png []byte
		if err == nil {
			png, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
		}
		cancel()
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, s.file), png, 0o644)
		}
		if err != nil {
			t.Errorf("screenshot %s: %v", s.file, err)
			continue
		}
		t.Logf("wrote docs/%s (%d bytes)", s.file, len(png))
	}
}

func TestReconnectsAfterServerRestart(t *testing.T) {
	t.Parallel()
	srv := startCrier(t)
	browser := newBrowser(t)
	a := openTab(t, browser, "tab", srv.URL+"/")
	a.do(t, "mark the document", chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`))

	srv.Signal(syscall.SIGTERM)
	a.waitFor(t, "the reconnecting state", `state() === "reconnecting"`)
	code, err := srv.Wait(15 * time.Second)
	if err != nil {
		t.Fatalf("crier after SIGTERM: %v", err)
	}
	if code != 0 {
		t.Errorf("crier exited %d after SIGTERM, want 0", code)
	}

	srv = testenv.StartAt(t, srv.Addr, crierArgs())
	a.waitFor(t, "live again", `state() === "live"`)
	if !eval[bool](t, a, `window.sameDocument === true`) {
		t.Fatalf("the page was reloaded; it should reconnect in place")
	}
	// The browser resumed with its Last-Event-ID, which the new process (history in
	// memory) cannot replay: the page shows the server's missed notice as a warning.
	a.waitFor(t, "the missed warning", `has("missed", "could not be replayed") && items("missed")[0].classList.contains("item-warning")`)
	publish(t, srv, `{"data":"back after the restart"}`)
	a.waitFor(t, "an event after the restart", `has("message", "back after the restart")`)
	a.waitFor(t, "the count after the restart", `count() === "1"`)
}
