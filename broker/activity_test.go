package broker_test

import (
	"sync"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
)

// recorder is an Options.Observe that keeps what it is told.
type recorder struct {
	mu   sync.Mutex
	seen []broker.Activity
}

func (r *recorder) observe(a broker.Activity) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, a)
}

func (r *recorder) take() []broker.Activity {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.seen
	r.seen = nil
	return out
}

func TestObserveConnectAndDisconnect(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var rec recorder
	b := broker.New(broker.Options{Observe: rec.observe, Now: func() time.Time { return now }})
	alice, err := b.Subscribe(broker.Request{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	anon, err := b.Subscribe(broker.Request{Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	alice.Close()
	alice.Close() // idempotent: observed once
	bob, err := b.Subscribe(broker.Request{User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	b.Close() // ends anon and bob: a backend hears of them even without presence events

	type want struct {
		kind       broker.ActivityKind
		subscriber string
		user       string
	}
	wants := []want{
		{broker.ActivityConnect, alice.ID(), "alice"},
		{broker.ActivityConnect, anon.ID(), anon.ID()},
		{broker.ActivityDisconnect, alice.ID(), "alice"},
		{broker.ActivityConnect, bob.ID(), "bob"},
	}
	got := rec.take()
	if len(got) != len(wants)+2 {
		t.Fatalf("got %d activities, want %d: %+v", len(got), len(wants)+2, got)
	}
	for i, w := range wants {
		a := got[i]
		if a.Kind != w.kind || a.Subscriber != w.subscriber || a.User != w.user || a.Topic != "" || !a.Time.Equal(now) {
			t.Errorf("activity %d: got %+v, want %+v at %v", i, a, w, now)
		}
	}
	// Close ends the rest in no particular order.
	closed := map[string]string{}
	for _, a := range got[len(wants):] {
		if a.Kind != broker.ActivityDisconnect {
			t.Errorf("at Close: got %+v, want a disconnect", a)
		}
		closed[a.Subscriber] = a.User
	}
	if closed[anon.ID()] != anon.ID() || closed[bob.ID()] != "bob" {
		t.Errorf("disconnects at Close: got %v, want %s and bob", closed, anon.ID())
	}
	if extra := rec.take(); len(extra) != 0 {
		t.Errorf("after Close: %+v", extra)
	}
	if u := alice.User(); u != "alice" {
		t.Errorf("User() = %q", u)
	}
}
