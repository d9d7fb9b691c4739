package broker_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/crierhq/crier/broker"
)

// herdBus is a Bus whose log holds a few events and whose replays wait for release.
type herdBus struct {
	events  []*broker.Event
	release chan struct{}
	reads   atomic.Int64
}

func (h *herdBus) Publish(context.Context, broker.Message) (broker.Receipt, error) {
	return broker.Receipt{}, broker.ErrClosed
}
func (h *herdBus) Joined(string)                     {}
func (h *herdBus) Left(string)                       {}
func (h *herdBus) Ready() error                      { return nil }
func (h *herdBus) Occupy(string, string, int) uint64 { return 0 }
func (h *herdBus) Room(context.Context, string, int) (broker.Room, error) {
	return broker.Room{}, nil
}
func (h *herdBus) History(context.Context, string, uint64, int) (broker.Page, error) {
	return broker.Page{}, nil
}

func (h *herdBus) Replay(ctx context.Context, after uint64, topics []string) (broker.Replay, error) {
	h.reads.Add(1)
	<-h.release
	var evs []*broker.Event
	for _, ev := range h.events {
		if ev.ID > after {
			c := *ev
			evs = append(evs, &c)
		}
	}
	return broker.Replay{Events: evs, Head: h.events[len(h.events)-1].ID}, nil
}

// Resumes that arrive together for the same id and topics share one read of the Bus,
// and its encoded events.
func TestConcurrentResumesShareOneRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := &herdBus{release: make(chan struct{})}
		for i := range 5 {
			bus.events = append(bus.events, &broker.Event{ID: uint64(100 + i), Topic: "news", Name: "m", Data: []byte{'a' + byte(i)}})
		}
		b := newBroker(t, broker.Options{Bus: bus, History: 10})
		b.Begin(104)
		const herd = 50
		subs := make([]*broker.Subscription, herd)
		var wg sync.WaitGroup
		for i := range herd {
			wg.Go(func() {
				subs[i] = subscribe(t, b, broker.Request{Topics: []string{"news"}, Resume: true, LastEventID: "101"})
			})
		}
		synctest.Wait() // every resume waits on the one read
		close(bus.release)
		wg.Wait()
		if n := bus.reads.Load(); n != 1 {
			t.Errorf("%d resumes read the bus %d times, want once", herd, n)
		}
		var first []byte
		for i, s := range subs {
			evs := replayed(t, s)
			if len(evs) != 3 || evs[0].ID != 102 || evs[2].ID != 104 {
				t.Fatalf("resume %d replayed %d events, want 102..104", i, len(evs))
			}
			if i == 0 {
				first = evs[0].Wire()
			} else if &evs[0].Wire()[0] != &first[0] {
				t.Fatal("a shared replay was encoded once per resume")
			}
		}
	})
}
