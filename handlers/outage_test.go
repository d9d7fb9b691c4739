package handlers_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
)

// outage is the real broker with its backing store switched off and on: while down,
// every publish fails as it does when Redis is unreachable.
type outage struct {
	handlers.Broker
	down atomic.Bool
}

func (o *outage) Publish(ctx context.Context, m broker.Message) (broker.Receipt, error) {
	if o.down.Load() {
		return broker.Receipt{}, errors.New("redisbus: publish: dial tcp 127.0.0.1:6379: connect: connection refused")
	}
	return o.Broker.Publish(ctx, m)
}

// TestOutageLoggedOncePerTransition checks that publishes failing during an outage are
// counted one by one but logged only when the outage begins and when it ends: a busy
// publisher must not flood the log with one warning per request.
func TestOutageLoggedOncePerTransition(t *testing.T) {
	t.Parallel()
	var store *outage
	s := setup{broker: func(b handlers.Broker) handlers.Broker {
		store = &outage{Broker: b}
		return store
	}}.start(t, presenceHistory, handlers.Options{})
	logs := s.logs
	publish := func(want int) {
		t.Helper()
		if code, body, _ := s.post(t, "application/json", "", `{"data":1}`, nil); code != want {
			t.Fatalf("publish: %d %v, want %d", code, body, want)
		}
	}
	publish(http.StatusOK)
	for range 2 { // two outages
		store.down.Store(true)
		for range 20 {
			publish(http.StatusServiceUnavailable)
		}
		store.down.Store(false)
		publish(http.StatusOK)
		publish(http.StatusOK)
	}

	if got := s.metrics(t)["crier_publish_failures_total"]; got != 40 {
		t.Errorf("crier_publish_failures_total = %v, want 40", got)
	}
	var warns, recovered int
	for _, line := range strings.Split(logs.String(), "\n") {
		switch {
		case strings.Contains(line, `"level":"WARN"`):
			warns++
		case strings.Contains(line, `"msg":"publishing works again"`):
			recovered++
		}
	}
	if warns != 2 || recovered != 2 {
		t.Errorf("%d warnings and %d recoveries logged for 2 outages of 20 failed publishes each, want 2 and 2:\n%s",
			warns, recovered, logs)
	}
}
