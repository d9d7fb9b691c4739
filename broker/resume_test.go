package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crierhq/crier/broker"
)

func TestResume(t *testing.T) {
	b := newBroker(t, broker.Options{History: 2})
	var ids []uint64
	for i := range 5 {
		topic := ""
		if i%2 == 1 {
			topic = "odd"
		}
		ids = append(ids, publish(t, b, broker.Message{Topic: topic, Data: fmt.Appendf(nil, "%d", i)}).ID)
	}
	// Each topic keeps its newest two: broadcasts 2 and 4 (0 has left), odd 1 and 3.
	for _, tc := range []struct {
		name       string
		last       string
		topics     []string
		wantMissed bool
		wantData   string
	}{
		{"from the newest", broker.FormatID(ids[4]), nil, false, "[]"},
		{"covered", broker.FormatID(ids[2]), []string{"odd"}, false, "[3 4]"},
		{"covered, broadcasts only", broker.FormatID(ids[1]), nil, false, "[2 4]"},
		{"from the evicted event itself", broker.FormatID(ids[0]), []string{"odd"}, false, "[1 2 3 4]"},
		{"before an evicted broadcast", broker.FormatID(ids[0] - 1), nil, true, "[2 4]"},
		{"before an evicted broadcast, with a topic", broker.FormatID(ids[0] - 1), []string{"odd"}, true, "[1 2 3 4]"},
		{"before this broker started", "1000000000000000", []string{"odd"}, true, "[1 2 3 4]"},
		{"not an id", "garbage", nil, true, "[2 4]"},
		{"from the future", broker.FormatID(ids[4] + 1e9), nil, true, "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := subscribe(t, b, broker.Request{Topics: tc.topics, Resume: true, LastEventID: tc.last})
			defer s.Close()
			evs := replayed(t, s)
			var data []string
			missed := false
			for i, ev := range evs {
				if ev.Name == broker.NameMissed {
					if i != 0 {
						t.Errorf("missed is event %d, want first", i)
					}
					missed = true
					var m struct{ LastEventID string }
					if err := json.Unmarshal(ev.Data, &m); err != nil || m.LastEventID != tc.last {
						t.Errorf("missed data %s: lastEventId %q, want %q (%v)", ev.Data, m.LastEventID, tc.last, err)
					}
					continue
				}
				data = append(data, string(ev.Data))
			}
			if missed != tc.wantMissed {
				t.Errorf("missed event: got %v, want %v", missed, tc.wantMissed)
			}
			if fmt.Sprint(data) != tc.wantData && !(len(data) == 0 && tc.wantData == "[]") {
				t.Errorf("replayed %v, want %s", data, tc.wantData)
			}
			for i := 1; i < len(evs); i++ {
				if evs[i].ID <= evs[i-1].ID {
					t.Errorf("ids not increasing: %d then %d", evs[i-1].ID, evs[i].ID)
				}
			}
		})
	}
}

// replayed takes what Subscribe queued from history: it is there at once, before any
// live event.
func replayed(t *testing.T, s *broker.Subscription) []*broker.Event {
	t.Helper()
	evs, err := s.Take(nil)
	if err != nil {
		t.Fatalf("Take: %v", err)
	}
	return evs
}

func TestHistoryZeroDisablesReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{History: 0})
		r := publish(t, b, broker.Message{Data: []byte("a")})
		s := subscribe(t, b, broker.Request{Resume: true, LastEventID: broker.FormatID(r.ID)})
		if got := drain(t, s); len(got) != 0 {
			t.Errorf("nothing published since the id, yet got %v", names(got))
		}
		publish(t, b, broker.Message{Data: []byte("b")})
		late := subscribe(t, b, broker.Request{Resume: true, LastEventID: broker.FormatID(r.ID)})
		if got := drain(t, late); len(got) != 1 || got[0].Name != broker.NameMissed {
			t.Errorf("with nothing retained a gap must be reported, got %v", names(got))
		}
	})
}

// client follows a topic set across disconnects, resuming like EventSource does: with the
// last id it saw, presence events included.
type client struct {
	topics []string
	sub    *broker.Subscription
	joined uint64 // id of its first own new_user: it is owed every matching event after it
	last   string
	got    []*broker.Event // everything but presence
	missed int
}

func (c *client) connect(t *testing.T, b *broker.Broker) {
	t.Helper()
	c.sub = subscribe(t, b, broker.Request{Topics: c.topics, Resume: c.last != "", LastEventID: c.last})
}

// read takes what is queued; until the client has seen its own first new_user (the
// dispatcher sends it a moment after Subscribe), it waits for it.
func (c *client) read(t *testing.T) {
	t.Helper()
	for {
		c.take(t)
		if c.joined != 0 {
			return
		}
		select {
		case <-c.sub.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("no new_user of its own within 10s")
		}
	}
}

func (c *client) take(t *testing.T) {
	t.Helper()
	evs, err := c.sub.Take(nil)
	if err != nil {
		t.Fatalf("Take: %v", err)
	}
	for _, ev := range evs {
		c.last = broker.FormatID(ev.ID)
		switch ev.Name {
		case broker.NameNewUser:
			if c.joined == 0 {
				var p presence
				json.Unmarshal(ev.Data, &p)
				if p.Subscriber == c.sub.ID() {
					c.joined = ev.ID
				}
			}
		case broker.NameUserLeft:
		case broker.NameMissed:
			c.missed++
		default:
			if c.joined != 0 {
				c.got = append(c.got, ev)
			}
		}
	}
}

// check compares what c received with what was published to its topics after it joined.
func (c *client) check(t *testing.T, published []*broker.Event) {
	t.Helper()
	var want []uint64
	for _, ev := range published {
		if ev.ID > c.joined && (ev.Topic == "" || slices.Contains(c.topics, ev.Topic)) {
			want = append(want, ev.ID)
		}
	}
	got := make([]uint64, len(c.got))
	for i, ev := range c.got {
		got[i] = ev.ID
	}
	if !slices.Equal(got, want) {
		t.Errorf("client %v: got %d events, want %d (first difference at %d)", c.topics, len(got), len(want), firstDiff(got, want))
	}
	if c.missed != 0 {
		t.Errorf("client %v: %d missed notices although history covered everything", c.topics, c.missed)
	}
}

func firstDiff(a, b []uint64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestResumeProperty drives random interleavings of publish, subscribe, disconnect and
// resume, with a publisher running concurrently, and checks that every client receives
// exactly its events, in order, with no gap and no duplicate.
func TestResumeProperty(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 42))
			const events = 1500
			b := newBroker(t, broker.Options{History: events + 10, Buffer: 1 << 20, Presence: true})
			topics := []string{"a", "b", "c"}

			var mu sync.Mutex
			var published []*broker.Event
			var wg sync.WaitGroup
			wg.Go(func() { // the concurrent publisher
				prng := rand.New(rand.NewPCG(seed, 7))
				for i := range events {
					topic := ""
					if k := prng.IntN(4); k < 3 {
						topic = topics[k]
					}
					r, err := b.Publish(context.Background(), broker.Message{Topic: topic, Data: fmt.Appendf(nil, "%d", i)})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					published = append(published, &broker.Event{ID: r.ID, Topic: topic})
					mu.Unlock()
				}
			})

			clients := make([]*client, 6)
			for i := range clients {
				clients[i] = &client{topics: topics[:rng.IntN(len(topics)+1)]}
				clients[i].connect(t, b)
			}
			for range 400 {
				c := clients[rng.IntN(len(clients))]
				switch rng.IntN(3) {
				case 0:
					c.read(t)
				case 1: // an abrupt disconnect, then a resume from the last id it saw
					c.read(t)
					c.sub.Close()
					c.connect(t, b)
				case 2: // a disconnect that drops what was queued but unread
					c.sub.Close()
					c.connect(t, b)
				}
			}
			wg.Wait()
			for _, c := range clients {
				c.read(t)
				c.sub.Close()
				c.connect(t, b) // a last resume picks up what is left
				c.read(t)
				c.check(t, published)
			}
		})
	}
}
