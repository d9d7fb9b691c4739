package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/crierhq/crier/auth"
	"github.com/crierhq/crier/internal/ssetest"
	"github.com/crierhq/crier/internal/testenv"
)

// A real crier tells a real backend of its streams: a connect when one opens and a join
// for each room it follows, a leave and a disconnect when it ends, the user's sub for a
// stream with a token, and, at shutdown, the disconnects of the streams still open,
// retried if need be, before it exits.
func TestWebhooksEndToEnd(t *testing.T) {
	secret := []byte("e2e-webhook-secret")
	var failOnce atomic.Bool // the next request fails, and crier has to retry it
	backend := testenv.NewWebhook(t, secret, func(int) int {
		if failOnce.CompareAndSwap(true, false) {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	jwtKey := strings.Repeat("k", auth.MinSecretLen)
	p := testenv.Start(t, []string{"-webhook-url", backend.Start() + "/crier", "-shutdown-timeout", "10s",
		"-presence-topics", "room/*"},
		"CRIER_WEBHOOK_SECRET="+string(secret), "CRIER_JWT_KEY="+jwtKey)

	open := func(topic, token string) (*http.Response, *bufio.Reader) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, p.URL+"/events?topic="+topic, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(resp.Body)
		if line, err := r.ReadString('\n'); !strings.HasPrefix(line, "retry:") {
			t.Fatalf("stream opening %q, %v", line, err)
		}
		return resp, r
	}
	var pending []testenv.WebhookEvent // of the last batch, not checked yet
	next := func(want, topic string) testenv.WebhookEvent {
		t.Helper()
		if len(pending) == 0 {
			pending = backend.Collect(t, 1)
		}
		ev := pending[0]
		pending = pending[1:]
		if ev.Type != want || ev.Subscriber == "" || (ev.Topic == nil) != (topic == "") || (ev.Topic != nil && *ev.Topic != topic) {
			t.Fatalf("got %+v, want a %s (topic %q)", ev, want, topic)
		}
		if _, err := time.Parse(time.RFC3339, ev.Time); err != nil {
			t.Errorf("time %q: %v", ev.Time, err)
		}
		return ev
	}

	anon, anonBody := open("news", "")
	defer anon.Body.Close()
	a := next("connect", "")
	if a.User != a.Subscriber {
		t.Errorf("an anonymous stream's user is %q, want its subscriber id %q", a.User, a.Subscriber)
	}
	token, err := auth.Sign([]byte(jwtKey), auth.Grants{}, "alice", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := open("room/1", token)
	for _, want := range []struct{ kind, topic string }{{"connect", ""}, {"join", "room/1"}} {
		if ev := next(want.kind, want.topic); ev.User != "alice" || ev.Subscriber == a.Subscriber {
			t.Errorf("got %+v, want alice's %s", ev, want.kind)
		}
	}
	alice.Body.Close()
	for _, want := range []struct{ kind, topic string }{{"leave", "room/1"}, {"disconnect", ""}} {
		if ev := next(want.kind, want.topic); ev.User != "alice" {
			t.Errorf("got %+v, want alice's %s", ev, want.kind)
		}
	}

	failOnce.Store(true)
	p.Signal(syscall.SIGTERM)
	_, _ = io.Copy(io.Discard, anonBody)
	if d := next("disconnect", ""); d.Subscriber != a.Subscriber {
		t.Errorf("got %+v, want the disconnect of the stream open at shutdown", d)
	}
	if code, err := p.Wait(20 * time.Second); code != 0 || err != nil {
		t.Errorf("exit %d (%v) after SIGTERM\n%s", code, err, p.Output())
	}
	if failOnce.Load() {
		t.Error("no request failed at shutdown: the retry was not tested")
	}
}

// A backend that takes requests and never answers slows nothing: streams open and close
// and a publish reaches every stream while the webhook queue waits; at shutdown, crier
// gives up on it after -shutdown-timeout and accounts for every event it could not send.
func TestWebhookBackendThatHangsSlowsNothing(t *testing.T) {
	secret := []byte("e2e-webhook-secret")
	hang := make(chan struct{})
	backend := testenv.NewWebhook(t, secret, func(int) int {
		<-hang
		return http.StatusServiceUnavailable
	})
	url := backend.Start()
	t.Cleanup(func() { close(hang) }) // before the backend's server closes
	const token = "publish-token-for-the-test"
	p := testenv.Start(t, []string{"-webhook-url", url, "-webhook-secret", string(secret),
		"-publish-token", token, "-shutdown-timeout", "2s"})

	const streams, leaving = 20, 8
	var open []*ssetest.Reader
	for i := range streams {
		resp, err := http.Get(p.URL + "/events?topic=news")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if i < leaving {
			resp.Body.Close()
			continue
		}
		open = append(open, ssetest.NewReader(resp.Body))
	}
	if status := publishText(t, p.URL+"/publish?topic=news", token, "while the backend hangs"); status != http.StatusOK {
		t.Fatalf("publish: %d", status)
	}
	for i, r := range open {
		for {
			ev, err := r.Next()
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
			if ev.Type == "message" && ev.Data == "while the backend hangs" {
				break
			}
		}
	}

	p.Signal(syscall.SIGTERM)
	if code, err := p.Wait(20 * time.Second); code != 0 || err != nil {
		t.Fatalf("exit %d (%v) after SIGTERM\n%s", code, err, p.Output())
	}
	// Every stream connected and disconnected, and none of it was delivered.
	if want := fmt.Sprintf("webhook events not delivered before shutdown\" webhook=%s dropped=%d", url, 2*streams); !strings.Contains(p.Output(), want) {
		t.Errorf("the log does not account for the undelivered events (%s):\n%s", want, p.Output())
	}
}
