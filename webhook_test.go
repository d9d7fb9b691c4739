package main

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crierhq/crier/auth"
	"github.com/crierhq/crier/internal/testenv"
)

// A real crier tells a real backend of its streams: a connect when one opens, a
// disconnect when it ends, a user's sub for a stream with a token, and, at shutdown, the
// disconnects of the streams still open, retried if need be, before it exits.
func TestWebhooksEndToEnd(t *testing.T) {
	secret := []byte("e2e-webhook-secret")
	// The backend fails its 4th request, the first with the disconnect at shutdown: crier
	// has to retry it while it shuts down.
	backend := testenv.NewWebhook(t, secret, func(n int) int {
		if n == 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	jwtKey := strings.Repeat("k", auth.MinSecretLen)
	p := testenv.Start(t, []string{"-webhook-url", backend.Start() + "/crier", "-shutdown-timeout", "10s"},
		"CRIER_WEBHOOK_SECRET="+string(secret), "CRIER_JWT_KEY="+jwtKey)

	open := func(token string) (*http.Response, *bufio.Reader) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, p.URL+"/events?topic=news", nil)
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
	next := func(want string) testenv.WebhookEvent {
		t.Helper()
		ev := backend.Collect(t, 1)[0]
		if ev.Type != want || ev.Subscriber == "" || ev.Topic != nil {
			t.Fatalf("got %+v, want a %s", ev, want)
		}
		if _, err := time.Parse(time.RFC3339, ev.Time); err != nil {
			t.Errorf("time %q: %v", ev.Time, err)
		}
		return ev
	}

	anon, anonBody := open("")
	defer anon.Body.Close()
	a := next("connect")
	if a.User != a.Subscriber {
		t.Errorf("an anonymous stream's user is %q, want its subscriber id %q", a.User, a.Subscriber)
	}
	token, err := auth.Sign([]byte(jwtKey), auth.Grants{}, "alice", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := open(token)
	c := next("connect")
	if c.User != "alice" || c.Subscriber == a.Subscriber {
		t.Errorf("got %+v, want a connect of alice", c)
	}
	alice.Body.Close()
	if d := next("disconnect"); d.User != "alice" || d.Subscriber != c.Subscriber {
		t.Errorf("got %+v, want alice's disconnect", d)
	}

	p.Signal(syscall.SIGTERM)
	_, _ = io.Copy(io.Discard, anonBody)
	if d := next("disconnect"); d.Subscriber != a.Subscriber {
		t.Errorf("got %+v, want the disconnect of the stream open at shutdown", d)
	}
	if code, err := p.Wait(20 * time.Second); code != 0 || err != nil {
		t.Errorf("exit %d (%v) after SIGTERM\n%s", code, err, p.Output())
	}
}
