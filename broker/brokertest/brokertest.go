// Package brokertest is the behaviour every crier broker shares, as a test suite: the
// in-memory broker and the Redis-backed cluster node both run it, so the service behaves
// the same on one node and on many.
package brokertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
)

// Broker is the part of a broker the suite exercises: what the HTTP handlers use.
type Broker interface {
	Subscribe(broker.Request) (*broker.Subscription, error)
	Publish(context.Context, broker.Message) (broker.Receipt, error)
	Ready() error
	Room(ctx context.Context, topic string, limit int) (broker.Room, error)
}

// New returns a fresh broker configured by opts, sharing nothing with any other, and
// arranges for it to be closed when t ends.
type New func(t *testing.T, opts broker.Options) Broker

// Wait is how long the suite waits for an event that should arrive.
var Wait = 10 * time.Second

// Run runs the shared behaviour tests against the brokers that newBroker makes.
func Run(t *testing.T, newBroker New) {
	tests := []struct {
		name string
		run  func(*testing.T, New)
	}{
		{"Ready", testReady},
		{"PresenceOrderAndCounts", testPresence},
		{"TopicRouting", testTopics},
		{"IDsIncrease", testIDs},
		{"ResumeWhilePublishing", testResume},
		{"Missed", testMissed},
		{"Idempotency", testIdempotency},
		{"SlowSubscriberCutOff", testSlow},
		{"Rooms", testRooms},
		{"RoomsAndPresence", testRoomsWithPresence},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newBroker)
		})
	}
}

func testReady(t *testing.T, nb New) {
	b := nb(t, broker.Options{})
	if err := b.Ready(); err != nil {
		t.Fatalf("Ready() = %v, want nil", err)
	}
}

// presence is the payload of new_user and user_left.
type presence struct {
	Message     string `json:"message"`
	Subscriber  string `json:"subscriber"`
	Subscribers int    `json:"subscribers"`
	Time        string `json:"time"`
}

func testPresence(t *testing.T, nb New) {
	b := nb(t, broker.Options{Presence: true, History: 10})
	a := subscribe(t, b, broker.Request{})
	expectPresence(t, a, broker.NameNewUser, a.ID(), 1)
	c := subscribe(t, b, broker.Request{})
	expectPresence(t, a, broker.NameNewUser, c.ID(), 2)
	expectPresence(t, c, broker.NameNewUser, c.ID(), 2)
	c.Close()
	expectPresence(t, a, broker.NameUserLeft, c.ID(), 1)
	publish(t, b, broker.Message{Data: []byte(`1`)})
	if ev := next(t, a); ev.Name != broker.NameMessage || !ev.Retained() {
		t.Fatalf("after presence: got %q (retained %v), want a retained message", ev.Name, ev.Retained())
	}
}

func expectPresence(t *testing.T, s *broker.Subscription, name, who string, count int) {
	t.Helper()
	ev := next(t, s)
	if ev.Name != name {
		t.Fatalf("got event %q %s, want %q", ev.Name, ev.Data, name)
	}
	var p presence
	if err := json.Unmarshal(ev.Data, &p); err != nil {
		t.Fatalf("presence data %s: %v", ev.Data, err)
	}
	if p.Subscriber != who || p.Subscribers != count {
		t.Fatalf("%s: got subscriber %q count %d, want %q count %d", name, p.Subscriber, p.Subscribers, who, count)
	}
	if _, err := time.Parse(time.RFC3339, p.Time); err != nil {
		t.Fatalf("%s: time %q: %v", name, p.Time, err)
	}
	if ev.Retained() {
		t.Fatalf("%s is retained; presence events must not be replayed", name)
	}
}

func testTopics(t *testing.T, nb New) {
	b := nb(t, broker.Options{History: 10})
	x := subscribe(t, b, broker.Request{Topics: []string{"x"}})
	y := subscribe(t, b, broker.Request{Topics: []string{"y", "z"}})
	none := subscribe(t, b, broker.Request{})
	publish(t, b, broker.Message{Topic: "x", Data: []byte(`"x"`)})
	publish(t, b, broker.Message{Topic: "z", Data: []byte(`"z"`)})
	publish(t, b, broker.Message{Topic: "w", Data: []byte(`"w"`)})
	publish(t, b, broker.Message{Name: "all", Data: []byte(`"all"`)})
	for _, tc := range []struct {
		name string
		sub  *broker.Subscription
		want []string
	}{
		{"topic x", x, []string{`"x"`, `"all"`}},
		{"topics y,z", y, []string{`"z"`, `"all"`}},
		{"no topic", none, []string{`"all"`}},
	} {
		var got []string
		for range tc.want {
			got = append(got, string(next(t, tc.sub).Data))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
		quiet(t, tc.sub)
	}
}

func testIDs(t *testing.T, nb New) {
	b := nb(t, broker.Options{History: 100, Presence: true})
	s := subscribe(t, b, broker.Request{})
	var receipts []uint64
	for i := range 20 {
		receipts = append(receipts, publish(t, b, broker.Message{Name: "n", Data: fmt.Appendf(nil, "%d", i)}).ID)
	}
	var last uint64
	seen := 0
	for seen < len(receipts) {
		ev := next(t, s)
		if ev.ID <= last {
			t.Fatalf("id %d after %d: ids must increase along a stream", ev.ID, last)
		}
		last = ev.ID
		if ev.Name != "n" {
			continue
		}
		if ev.ID != receipts[seen] {
			t.Fatalf("event %d has id %d, its receipt said %d", seen, ev.ID, receipts[seen])
		}
		if got := len(broker.FormatID(ev.ID)); got != 16 {
			t.Fatalf("id %d has %d digits, want 16", ev.ID, got)
		}
		seen++
	}
}

// testResume reads a stream in pieces, reconnecting with the last id each time, while
// events keep coming: the pieces must join into every event once, in order.
func testResume(t *testing.T, nb New) {
	const n = 300
	b := nb(t, broker.Options{History: 1000, Presence: true})
	first := subscribe(t, b, broker.Request{Topics: []string{"t"}})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			topic := "t"
			if i%3 == 0 {
				topic = "other"
			}
			publish(t, b, broker.Message{Topic: topic, Data: fmt.Appendf(nil, "%d", i)})
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	var got []string
	want := n - (n+2)/3
	s := first
	lastID := ""
	for reconnects := 0; len(got) < want; {
		ev := next(t, s)
		lastID = broker.FormatID(ev.ID)
		if ev.Name == broker.NameMissed {
			t.Fatalf("resume from %s reported missed events: %s", lastID, ev.Data)
		}
		if !ev.Retained() {
			continue
		}
		got = append(got, string(ev.Data))
		if len(got)%40 == 0 && reconnects < 6 {
			s.Close()
			reconnects++
			s = subscribe(t, b, broker.Request{Topics: []string{"t"}, Resume: true, LastEventID: lastID})
		}
	}
	wg.Wait()
	k := 0
	for i := range n {
		if i%3 == 0 {
			continue
		}
		if got[k] != fmt.Sprint(i) {
			t.Fatalf("event %d: got %s, want %d (no gap, no duplicate)", k, got[k], i)
		}
		k++
	}
	quietRetained(t, s)
}

func testMissed(t *testing.T, nb New) {
	b := nb(t, broker.Options{History: 3})
	var ids []uint64
	for i := range 10 {
		ids = append(ids, publish(t, b, broker.Message{Data: fmt.Appendf(nil, "%d", i)}).ID)
	}
	for _, from := range []string{broker.FormatID(ids[0]), "not-an-id", "42"} {
		s := subscribe(t, b, broker.Request{Resume: true, LastEventID: from})
		ev := next(t, s)
		if ev.Name != broker.NameMissed {
			t.Fatalf("resume from %s: first event %q, want %q", from, ev.Name, broker.NameMissed)
		}
		var body struct{ LastEventID string }
		if err := json.Unmarshal(ev.Data, &body); err != nil || body.LastEventID != from {
			t.Fatalf("resume from %s: missed data %s", from, ev.Data)
		}
		if ev.ID >= ids[7] {
			t.Fatalf("missed id %d is not below the retained events (from %d)", ev.ID, ids[7])
		}
		for i := 7; i < 10; i++ {
			if ev := next(t, s); ev.ID != ids[i] {
				t.Fatalf("resume from %s: got id %d, want %d", from, ev.ID, ids[i])
			}
		}
		quiet(t, s)
	}
	// Resuming from a retained id is complete.
	s := subscribe(t, b, broker.Request{Resume: true, LastEventID: broker.FormatID(ids[7])})
	for i := 8; i < 10; i++ {
		if ev := next(t, s); ev.ID != ids[i] {
			t.Fatalf("resume from a retained id: got %s %d, want id %d", ev.Name, ev.ID, ids[i])
		}
	}
	quiet(t, s)
}

func testIdempotency(t *testing.T, nb New) {
	b := nb(t, broker.Options{History: 2})
	s := subscribe(t, b, broker.Request{Topics: []string{"orders"}})
	m := broker.Message{Topic: "orders", Name: "paid", Data: []byte(`1`), Key: "k", Publisher: "alice"}
	r1 := publish(t, b, m)
	r2 := publish(t, b, m)
	if r1.Duplicate || !r2.Duplicate || r2.ID != r1.ID {
		t.Fatalf("retry with the same key: got %+v then %+v, want the first id twice, the second a duplicate", r1, r2)
	}
	// The same key with another topic, name or data is refused; another publisher's key
	// is its own.
	for _, tc := range []struct {
		name   string
		change func(*broker.Message)
	}{
		{"topic", func(m *broker.Message) { m.Topic = "admin" }},
		{"broadcast", func(m *broker.Message) { m.Topic = "" }},
		{"name", func(m *broker.Message) { m.Name = "refunded" }},
		{"data", func(m *broker.Message) { m.Data = []byte(`2`) }},
		{"text", func(m *broker.Message) { m.Text = true }},
	} {
		other := m
		tc.change(&other)
		if r, err := b.Publish(context.Background(), other); !errors.Is(err, broker.ErrKeyConflict) {
			t.Errorf("same key, different %s: got %+v, %v, want ErrKeyConflict", tc.name, r, err)
		}
	}
	other := m
	other.Publisher = "mallory"
	if r := publish(t, b, other); r.Duplicate || r.ID == r1.ID {
		t.Errorf("another publisher's key matched: %+v", r)
	}
	if ev := next(t, s); ev.ID != r1.ID {
		t.Fatalf("got id %d, want %d", ev.ID, r1.ID)
	}
	next(t, s) // mallory's
	quiet(t, s)
	// Once the event is out of history, the key is forgotten.
	publish(t, b, broker.Message{Topic: "orders", Data: []byte(`3`)})
	publish(t, b, broker.Message{Topic: "orders", Data: []byte(`4`)})
	r3 := publish(t, b, broker.Message{Topic: "orders", Data: []byte(`5`), Key: "k", Publisher: "alice"})
	if r3.Duplicate || r3.ID == r1.ID {
		t.Fatalf("key of an evicted event: got %+v, want a new event", r3)
	}
}

func testSlow(t *testing.T, nb New) {
	b := nb(t, broker.Options{Buffer: 2, Presence: true})
	fast := subscribe(t, b, broker.Request{})
	expectPresence(t, fast, broker.NameNewUser, fast.ID(), 1)
	slow := subscribe(t, b, broker.Request{})
	slow.SetBlocked(true) // its connection stops taking bytes
	expectPresence(t, fast, broker.NameNewUser, slow.ID(), 2)
	// The fast subscriber keeps up, gets every event, and hears the slow one leave.
	left := false
	for i := range 5 {
		publish(t, b, broker.Message{Data: fmt.Appendf(nil, "%d", i)})
		for {
			ev := next(t, fast)
			if ev.Name == broker.NameUserLeft {
				var p presence
				_ = json.Unmarshal(ev.Data, &p)
				if p.Subscriber != slow.ID() || p.Subscribers != 1 {
					t.Fatalf("user_left %s, want the slow subscriber %s and a count of 1", ev.Data, slow.ID())
				}
				left = true
				continue
			}
			if string(ev.Data) != fmt.Sprint(i) {
				t.Fatalf("fast subscriber: got %s %s, want %d", ev.Name, ev.Data, i)
			}
			break
		}
	}
	if !left {
		expectPresence(t, fast, broker.NameUserLeft, slow.ID(), 1)
	}
	deadline := time.After(Wait)
	for {
		select {
		case <-slow.Ready():
		case <-deadline:
			t.Fatal("the slow subscriber was not cut off")
		}
		if _, err := slow.Take(nil); err != nil {
			if !errors.Is(err, broker.ErrSlow) {
				t.Fatalf("slow subscriber ended with %v, want ErrSlow", err)
			}
			return
		}
	}
}

func subscribe(t *testing.T, b Broker, r broker.Request) *broker.Subscription {
	t.Helper()
	s, err := b.Subscribe(r)
	if err != nil {
		t.Fatalf("Subscribe(%+v): %v", r, err)
	}
	t.Cleanup(s.Close)
	return s
}

func publish(t *testing.T, b Broker, m broker.Message) broker.Receipt {
	t.Helper()
	r, err := b.Publish(context.Background(), m)
	if err != nil {
		t.Errorf("Publish: %v", err)
	}
	return r
}

// pending holds events taken from subscriptions but not yet looked at.
var pending sync.Map // *broker.Subscription -> []*broker.Event

// next returns the subscription's next event, failing t when none comes within Wait.
func next(t *testing.T, s *broker.Subscription) *broker.Event {
	t.Helper()
	ev, ok := nextWithin(t, s, Wait)
	if !ok {
		t.Fatalf("no event within %s", Wait)
	}
	return ev
}

func nextWithin(t *testing.T, s *broker.Subscription, d time.Duration) (*broker.Event, bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		if v, ok := pending.Load(s); ok {
			if evs := v.([]*broker.Event); len(evs) > 0 {
				pending.Store(s, evs[1:])
				return evs[0], true
			}
		}
		select {
		case <-s.Ready():
		case <-deadline:
			return nil, false
		}
		evs, err := s.Take(nil)
		if len(evs) > 0 {
			pending.Store(s, evs)
			continue
		}
		if err != nil {
			t.Fatalf("subscription ended: %v", err)
		}
	}
}

// quiet checks that nothing more arrives for a short while.
func quiet(t *testing.T, s *broker.Subscription) {
	t.Helper()
	if ev, ok := nextWithin(t, s, 100*time.Millisecond); ok {
		t.Fatalf("unexpected event %q id %d: %s", ev.Name, ev.ID, ev.Data)
	}
}

// quietRetained is quiet, ignoring presence events.
func quietRetained(t *testing.T, s *broker.Subscription) {
	t.Helper()
	for {
		ev, ok := nextWithin(t, s, 100*time.Millisecond)
		if !ok {
			return
		}
		if ev.Retained() {
			t.Fatalf("unexpected event %q id %d: %s", ev.Name, ev.ID, ev.Data)
		}
	}
}
