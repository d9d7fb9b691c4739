package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/crierhq/crier/broker"
)

// TestPublishReturnsBeforeFanOut: a publish is answered while the dispatcher is still busy
// with an earlier fan-out; once the outbox is full, publishers wait for room, and give up
// when their context ends. Nothing is lost either way.
func TestPublishReturnsBeforeFanOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{Buffer: broker.OutboxLimit + 10})
		s := subscribe(t, b, broker.Request{})
		release := make(chan struct{})
		s.Notify(func() { <-release }) // holds the dispatcher in its first delivery
		publish(t, b, broker.Message{Data: []byte("first")})
		synctest.Wait()
		for range broker.OutboxLimit {
			publish(t, b, broker.Message{Data: []byte("queued")}) // returns: the outbox has room
		}

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			_, err := b.Publish(ctx, broker.Message{Data: []byte("given up")})
			done <- err
		}()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("a publish into a full outbox returned at once (%v)", err)
		default:
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("a waiting publish whose context ended: %v, want context.Canceled", err)
		}

		go func() {
			_, err := b.Publish(context.Background(), broker.Message{Data: []byte("last")})
			done <- err
		}()
		synctest.Wait()
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("a publish waiting for room: %v", err)
		}
		got := drain(t, s)
		if want := 1 + broker.OutboxLimit + 1; len(got) != want {
			t.Fatalf("the subscriber got %d events, want %d", len(got), want)
		}
		if first, last := string(got[0].Data), string(got[len(got)-1].Data); first != "first" || last != "last" {
			t.Errorf("first and last events %q and %q, want first and last", first, last)
		}
	})
}

// TestCloseStopsTheDispatcher: Close ends the subscriptions and returns only once the
// dispatcher has stopped (a goroutine left behind would fail the bubble), even with
// events waiting for it.
func TestCloseStopsTheDispatcher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker.New(broker.Options{Presence: true})
		s := subscribe(t, b, broker.Request{})
		for range 100 {
			publish(t, b, broker.Message{Data: []byte("x")})
		}
		b.Close()
		b.Close()
		if err := s.Err(); !errors.Is(err, broker.ErrClosed) {
			t.Errorf("subscription after Close: %v, want ErrClosed", err)
		}
		if _, err := b.Publish(context.Background(), broker.Message{Data: []byte("late")}); !errors.Is(err, broker.ErrClosed) {
			t.Errorf("Publish after Close: %v, want ErrClosed", err)
		}
	})
}

// TestJoinsAndEventsInOneOrder: a subscription gets exactly the events published after
// its Subscribe returned, in publish order: second subscribes while "one" still waits for
// the dispatcher, and must not get it. With presence on, the announcements fall in the
// same order.
func TestJoinsAndEventsInOneOrder(t *testing.T) {
	for _, presence := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			b := newBroker(t, broker.Options{Presence: presence})
			first := subscribe(t, b, broker.Request{})
			publish(t, b, broker.Message{Name: "one"})
			second := subscribe(t, b, broker.Request{})
			publish(t, b, broker.Message{Name: "two"})
			synctest.Wait() // what first was sent, it keeps when it closes
			first.Close()
			publish(t, b, broker.Message{Name: "three"})
			synctest.Wait()

			want := map[*broker.Subscription][]string{
				first:  {"one", "two"},
				second: {"two", "three"},
			}
			if presence {
				want[first] = []string{broker.NameNewUser, "one", broker.NameNewUser, "two"}
				want[second] = []string{broker.NameNewUser, "two", broker.NameUserLeft, "three"}
			}
			for s, w := range want {
				evs, _ := s.Take(nil) // first is closed: Take still hands out what it had
				if got := names(evs); fmt.Sprint(got) != fmt.Sprint(w) {
					t.Errorf("presence %v: got %v, want %v", presence, got, w)
				}
			}
		})
	}
}
