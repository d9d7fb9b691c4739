package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
	"github.com/crierhq/crier/internal/testenv"
)

// TestPublishRefusedWhileBehind: while delivery is behind (here a subscription whose
// consumer is not blocked but does not take, as a writer short of CPU would be), a
// publish waits -publish-wait and then answers 503 with Retry-After and a JSON error,
// and its event is never delivered; nobody is cut off, every event answered 200 reaches
// the stream once delivery catches up, and the log says once that it fell behind.
func TestPublishRefusedWhileBehind(t *testing.T) {
	logs := &testenv.Log{}
	s := newServer(t, broker.Options{Buffer: 64, PublishWait: 100 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(logs, nil))}, handlers.Options{})
	st := s.open(t, "?topic=t", nil)
	held, err := s.broker.Subscribe(broker.Request{Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	// Fill the held queue, then the dispatcher's outbox, from inside the process.
	accepted := 0
	for ; ; accepted++ {
		_, err := s.broker.Publish(context.Background(), broker.Message{Topic: "t", Data: fmt.Appendf(nil, "%d", accepted)})
		if errors.Is(err, broker.ErrBusy) {
			break
		}
		if err != nil || accepted > 100000 {
			t.Fatalf("after %d publishes: %v, want ErrBusy once the outbox is full", accepted, err)
		}
	}
	for range 2 {
		code, body, h := s.post(t, "application/json", "", `{"topic":"t","data":"refused"}`, nil)
		if code != 503 || h.Get("Retry-After") == "" || body["error"] == "" {
			t.Fatalf("publish while behind: %d %v Retry-After %q; want 503, a JSON error and Retry-After", code, body, h.Get("Retry-After"))
		}
	}
	if st := s.broker.Stats(); st.CutOff != 0 || st.Refused != 3 {
		t.Fatalf("cut off %d, refused %d; want 0 and 3", st.CutOff, st.Refused)
	}

	// Delivery catches up: the held consumer takes everything as it comes.
	go func() {
		for {
			select {
			case <-held.Ready():
				if _, err := held.Take(nil); err != nil {
					return
				}
			case <-time.After(20 * time.Second):
				return
			}
		}
	}()
	for i := range accepted {
		if ev := st.expect(t, "message"); ev.Data != fmt.Sprint(i) {
			t.Fatalf("event %d: %q, want %d (accepted events in order, refused ones never)", i, ev.Data, i)
		}
	}
	code, _, _ := s.post(t, "application/json", "", `{"topic":"t","data":"after"}`, nil)
	if code != 200 {
		t.Fatalf("publish after catching up: %d, want 200", code)
	}
	if ev := st.expect(t, "message"); ev.Data != `"after"` {
		t.Fatalf("after the accepted events: %q, want the next accepted one", ev.Data)
	}
	if n := strings.Count(logs.String(), "delivery is behind publishing"); n != 1 {
		t.Errorf("the log said %d times that delivery fell behind, want once:\n%s", n, logs.String())
	}
}
