package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crierhq/crier/broker"
)

// encode is a stand-in wire encoder that makes Wire observable in tests.
func encode(ev *broker.Event) []byte {
	return fmt.Appendf(nil, "%d %s %s", ev.ID, ev.Name, ev.Data)
}

func newBroker(t *testing.T, opts broker.Options) *broker.Broker {
	t.Helper()
	if opts.Encode == nil {
		opts.Encode = encode
	}
	b := broker.New(opts)
	t.Cleanup(b.Close)
	return b
}

// drain takes whatever is queued for s once the broker's dispatcher has done all it
// was given. Call it inside a synctest bubble.
func drain(t *testing.T, s *broker.Subscription) []*broker.Event {
	t.Helper()
	synctest.Wait()
	evs, err := s.Take(nil)
	if err != nil {
		t.Fatalf("Take: %v", err)
	}
	return evs
}

func names(evs []*broker.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Name
	}
	return out
}

type presence struct {
	Message     string `json:"message"`
	Subscriber  string `json:"subscriber"`
	Subscribers int    `json:"subscribers"`
	Time        string `json:"time"`
}

func decodePresence(t *testing.T, ev *broker.Event) presence {
	t.Helper()
	var p presence
	if err := json.Unmarshal(ev.Data, &p); err != nil {
		t.Fatalf("presence data %q: %v", ev.Data, err)
	}
	if _, err := time.Parse(time.RFC3339, p.Time); err != nil {
		t.Errorf("presence time %q is not RFC 3339: %v", p.Time, err)
	}
	return p
}

func subscribe(t *testing.T, b *broker.Broker, r broker.Request) *broker.Subscription {
	t.Helper()
	s, err := b.Subscribe(r)
	if err != nil {
		t.Fatalf("Subscribe(%+v): %v", r, err)
	}
	return s
}

func publish(t *testing.T, b *broker.Broker, m broker.Message) broker.Receipt {
	t.Helper()
	r, err := b.Publish(context.Background(), m)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return r
}

func TestPresenceAttachAndDetach(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{Presence: true})
		first := subscribe(t, b, broker.Request{})
		second := subscribe(t, b, broker.Request{})

		got := drain(t, first)
		if want := []string{"new_user", "new_user"}; fmt.Sprint(names(got)) != fmt.Sprint(want) {
			t.Fatalf("first stream got %v, want %v", names(got), want)
		}
		for i, want := range []presence{
			{Message: "new user connected", Subscriber: first.ID(), Subscribers: 1},
			{Message: "new user connected", Subscriber: second.ID(), Subscribers: 2},
		} {
			p := decodePresence(t, got[i])
			if p.Message != want.Message || p.Subscriber != want.Subscriber || p.Subscribers != want.Subscribers {
				t.Errorf("event %d: got %+v, want %+v", i, p, want)
			}
		}
		if got := drain(t, second); len(got) != 1 || got[0].Name != "new_user" || decodePresence(t, got[0]).Subscriber != second.ID() {
			t.Fatalf("second stream got %v, want its own new_user", names(got))
		}

		second.Close()
		second.Close() // idempotent: one user_left only
		got = drain(t, first)
		if len(got) != 1 || got[0].Name != "user_left" {
			t.Fatalf("after close, first got %v, want one user_left", names(got))
		}
		p := decodePresence(t, got[0])
		if p.Message != "user disconnected" || p.Subscriber != second.ID() || p.Subscribers != 1 {
			t.Errorf("user_left data %+v", p)
		}
		if _, err := second.Take(nil); !errors.Is(err, broker.ErrEnded) {
			t.Errorf("Take after Close: %v, want ErrEnded", err)
		}
	})
}

func TestPresenceOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{})
		s := subscribe(t, b, broker.Request{})
		other := subscribe(t, b, broker.Request{})
		other.Close()
		if got := drain(t, s); len(got) != 0 {
			t.Fatalf("presence off: got %v, want nothing", names(got))
		}
	})
}

func TestRouting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{History: 10})
		all := subscribe(t, b, broker.Request{})
		orders := subscribe(t, b, broker.Request{Topics: []string{"orders"}})
		both := subscribe(t, b, broker.Request{Topics: []string{"orders", "alerts"}})

		publish(t, b, broker.Message{Topic: "orders", Data: []byte("1")})
		publish(t, b, broker.Message{Topic: "alerts", Data: []byte("2")})
		publish(t, b, broker.Message{Data: []byte("3")})
		publish(t, b, broker.Message{Topic: "other", Data: []byte("4")})

		for _, tc := range []struct {
			name string
			sub  *broker.Subscription
			want string
		}{
			{"no topics", all, "[3]"},
			{"orders", orders, "[1 3]"},
			{"orders and alerts", both, "[1 2 3]"},
		} {
			var got []string
			for _, ev := range drain(t, tc.sub) {
				got = append(got, string(ev.Data))
			}
			if fmt.Sprint(got) != tc.want {
				t.Errorf("%s: got %v, want %s", tc.name, got, tc.want)
			}
		}
	})
}

func TestEventDefaultsAndWire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{})
		s := subscribe(t, b, broker.Request{})
		r := publish(t, b, broker.Message{Data: []byte(`{"a":1}`)})
		evs := drain(t, s)
		if len(evs) != 1 {
			t.Fatalf("got %d events, want 1", len(evs))
		}
		ev := evs[0]
		if ev.ID != r.ID || ev.Name != broker.NameMessage || !ev.Retained() {
			t.Errorf("event %+v, receipt %+v", ev, r)
		}
		if want := fmt.Sprintf("%d message {\"a\":1}", r.ID); string(ev.Wire()) != want {
			t.Errorf("Wire() = %q, want %q", ev.Wire(), want)
		}
		// The same bytes are shared, not re-encoded, for every subscriber.
		a := subscribe(t, b, broker.Request{})
		c := subscribe(t, b, broker.Request{})
		publish(t, b, broker.Message{Data: []byte("x")})
		wa, wc := drain(t, a)[0].Wire(), drain(t, c)[0].Wire()
		if &wa[0] != &wc[0] {
			t.Error("two subscribers got separately encoded bytes for one event")
		}
	})
}

func TestIDsIncrease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A frozen clock must still yield strictly increasing ids.
		frozen := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
		b := newBroker(t, broker.Options{Presence: true, Now: func() time.Time { return frozen }})
		s := subscribe(t, b, broker.Request{})
		for range 100 {
			publish(t, b, broker.Message{Data: []byte("x")})
		}
		subscribe(t, b, broker.Request{}).Close()
		var last uint64
		for _, ev := range drain(t, s) {
			if ev.ID <= last {
				t.Fatalf("id %d after %d: not strictly increasing", ev.ID, last)
			}
			last = ev.ID
		}
		// Ids come from the wall clock, so a restarted broker continues above the old ones.
		later := broker.New(broker.Options{Now: func() time.Time { return frozen.Add(time.Second) }})
		defer later.Close()
		r := publish(t, later, broker.Message{})
		if r.ID <= last {
			t.Errorf("after a restart the first id %d is not above %d", r.ID, last)
		}
		if got := broker.FormatID(r.ID); len(got) != 16 {
			t.Errorf("id %s has %d digits, want 16", got, len(got))
		}
	})
}

func TestIdempotencyKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{History: 2})
		s := subscribe(t, b, broker.Request{})
		first := publish(t, b, broker.Message{Data: []byte("a"), Key: "k1"})
		again := publish(t, b, broker.Message{Data: []byte("a"), Key: "k1"})
		if !again.Duplicate || again.ID != first.ID {
			t.Fatalf("retry receipt %+v, want duplicate of %d", again, first.ID)
		}
		if got := drain(t, s); len(got) != 1 {
			t.Fatalf("retry delivered again: got %d events, want 1", len(got))
		}
		// Once the first event leaves history the key is forgotten.
		publish(t, b, broker.Message{Data: []byte("b")})
		publish(t, b, broker.Message{Data: []byte("c")})
		late := publish(t, b, broker.Message{Data: []byte("a"), Key: "k1"})
		if late.Duplicate || late.ID == first.ID {
			t.Errorf("key still remembered after eviction: %+v", late)
		}
		if st := b.Stats(); st.Duplicates != 1 {
			t.Errorf("Stats().Duplicates = %d, want 1", st.Duplicates)
		}
	})
}

func TestMaxSubscribers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{MaxSubscribers: 2})
		a := subscribe(t, b, broker.Request{})
		subscribe(t, b, broker.Request{})
		if _, err := b.Subscribe(broker.Request{}); !errors.Is(err, broker.ErrFull) {
			t.Fatalf("third Subscribe: %v, want ErrFull", err)
		}
		a.Close()
		subscribe(t, b, broker.Request{})
	})
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker.New(broker.Options{Presence: true})
		s, _ := b.Subscribe(broker.Request{})
		b.Close()
		b.Close()
		<-s.Ready()
		if evs, err := s.Take(nil); !errors.Is(err, broker.ErrClosed) || len(evs) != 0 {
			t.Fatalf("Take after broker Close: %d events, %v; want none, ErrClosed", len(evs), err)
		}
		if _, err := b.Subscribe(broker.Request{}); !errors.Is(err, broker.ErrClosed) {
			t.Errorf("Subscribe after Close: %v", err)
		}
		if _, err := b.Publish(context.Background(), broker.Message{}); !errors.Is(err, broker.ErrClosed) {
			t.Errorf("Publish after Close: %v", err)
		}
		if err := b.Ready(); !errors.Is(err, broker.ErrClosed) {
			t.Errorf("Ready after Close: %v", err)
		}
		s.Close() // after the broker closed: no panic, no presence
	})
}

func TestSlowSubscriberIsCutOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{Buffer: 4, Presence: true, History: 100})
		stalled := subscribe(t, b, broker.Request{})
		reader := subscribe(t, b, broker.Request{})
		drain(t, stalled)
		drain(t, reader)
		stalled.SetBlocked(true) // its connection stopped taking bytes

		var last broker.Receipt
		for i := range 20 {
			last = publish(t, b, broker.Message{Data: fmt.Appendf(nil, "%d", i)})
			if got := drain(t, reader); len(got) == 0 {
				t.Fatalf("publish %d: the reading subscriber got nothing", i)
			}
		}
		if err := stalled.Err(); !errors.Is(err, broker.ErrSlow) {
			t.Fatalf("stalled subscriber: Err() = %v, want ErrSlow", err)
		}
		if evs, err := stalled.Take(nil); len(evs) != 0 || !errors.Is(err, broker.ErrSlow) {
			t.Errorf("stalled Take: %d events, %v; want none, ErrSlow (its queue is dropped)", len(evs), err)
		}
		if st := b.Stats(); st.CutOff != 1 || st.Subscribers != 1 {
			t.Errorf("stats after cut-off: %+v", st)
		}
		// Reconnecting with the last id it saw catches up from history.
		back := subscribe(t, b, broker.Request{Resume: true, LastEventID: "0"})
		evs := drain(t, back)
		if evs[len(evs)-1].Name != "new_user" {
			t.Fatalf("resumed stream should end with its own new_user, got %v", names(evs))
		}
		if replayed := evs[len(evs)-2]; replayed.ID != last.ID {
			t.Errorf("last replayed id %d, want %d", replayed.ID, last.ID)
		}
	})
}

func TestConcurrentAttachDetachPublish(t *testing.T) {
	b := newBroker(t, broker.Options{Presence: true, History: 50, Buffer: 8})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				s, err := b.Subscribe(broker.Request{Topics: []string{fmt.Sprint(w % 3)}, Resume: i%2 == 0, LastEventID: "0"})
				if err != nil {
					t.Error(err)
					return
				}
				s.Take(nil)
				s.Close()
			}
		})
	}
	wg.Go(func() {
		for i := 0; ctx.Err() == nil && i < 2000; i++ {
			b.Publish(ctx, broker.Message{Topic: fmt.Sprint(i % 4), Data: []byte("x")})
		}
	})
	wg.Wait()
	if st := b.Stats(); st.Subscribers != 0 || st.Attached != st.Detached || st.Attached != 1600 {
		t.Errorf("after all closed: %+v", st)
	}
}

func ExampleBroker() {
	b := broker.New(broker.Options{History: 100})
	defer b.Close()
	s, _ := b.Subscribe(broker.Request{Topics: []string{"orders"}})
	defer s.Close()

	b.Publish(context.Background(), broker.Message{Topic: "orders", Name: "order_shipped", Data: []byte(`{"order":42}`)})
	b.Publish(context.Background(), broker.Message{Topic: "invoices", Data: []byte(`{"invoice":7}`)})

	<-s.Ready()
	evs, _ := s.Take(nil)
	for _, ev := range evs {
		fmt.Printf("%s %s %s\n", ev.Topic, ev.Name, ev.Data)
	}
	// Output: orders order_shipped {"order":42}
}

// TestFullQueueWaitsForItsConsumer: a subscription whose queue is full while its consumer
// is not blocked is not behind (crier is): it is not cut off, the broker waits for it,
// and publishers wait in turn, until Options.PublishWait ends a publish with ErrBusy,
// accepting nothing. Once the consumer takes, every accepted event arrives, in order.
func TestFullQueueWaitsForItsConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{Buffer: 4, PublishWait: 3 * time.Second})
		s := subscribe(t, b, broker.Request{})
		// The queue fills, then the dispatcher waits for it, then the outbox fills.
		var (
			accepted int
			err      error
			start    time.Time
		)
		for ; accepted < 3*broker.OutboxLimit; accepted++ {
			start = time.Now()
			if _, err = b.Publish(context.Background(), broker.Message{Data: fmt.Appendf(nil, "%d", accepted)}); err != nil {
				break
			}
		}
		if !errors.Is(err, broker.ErrBusy) || accepted < broker.OutboxLimit {
			t.Fatalf("after %d publishes: %v, want ErrBusy once the outbox (%d) is full", accepted, err, broker.OutboxLimit)
		}
		if waited := time.Since(start); waited != 3*time.Second {
			t.Errorf("the refused publish waited %s, want the publish wait, 3s", waited)
		}
		if err := s.Err(); err != nil {
			t.Fatalf("a full subscription whose consumer is not blocked: Err() = %v, want nil", err)
		}
		st := b.Stats()
		if st.Refused != 1 || st.PublishWaits != 1 || st.PublishWaited != 3*time.Second || st.CutOff != 0 {
			t.Errorf("stats: refused %d, waits %d, waited %s, cut off %d; want 1, 1, 3s, 0",
				st.Refused, st.PublishWaits, st.PublishWaited, st.CutOff)
		}

		// The consumer catches up: a publish waiting meanwhile gets in.
		done := make(chan error)
		go func() {
			_, err := b.Publish(context.Background(), broker.Message{Data: []byte("late")})
			done <- err
		}()
		var got []*broker.Event
		for len(got) < accepted+1 {
			got = append(got, drain(t, s)...)
		}
		if err := <-done; err != nil {
			t.Fatalf("a publish waiting while the consumer caught up: %v", err)
		}
		for i, ev := range got[:accepted] {
			if string(ev.Data) != fmt.Sprint(i) {
				t.Fatalf("event %d: %s, want %d", i, ev.Data, i)
			}
		}
		if ev := got[accepted]; string(ev.Data) != "late" || len(got) != accepted+1 {
			t.Fatalf("after the accepted events: %d more, the first %s; want one, late", len(got)-accepted, ev.Data)
		}
		if err := s.Err(); err != nil {
			t.Errorf("Err() = %v after catching up, want nil", err)
		}
	})
}

// TestBlockedConsumerIsCutOffWhileBehind: while the broker waits for a consumer that is
// not blocked, another whose connection is blocked is still cut off at its limit, and a
// consumer that blocks while the broker waits for it is cut off instead of waited for.
func TestBlockedConsumerIsCutOffWhileBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{Buffer: 4})
		waited := subscribe(t, b, broker.Request{})
		stuck := subscribe(t, b, broker.Request{})
		stuck.SetBlocked(true)
		for i := range 20 {
			publish(t, b, broker.Message{Data: fmt.Appendf(nil, "%d", i)})
		}
		synctest.Wait()
		// Both queues are full: the broker waits for the one that is not blocked, and
		// cuts the other off with its next event.
		if err := stuck.Err(); err != nil {
			t.Fatalf("blocked consumer before the next event: Err() = %v, want nil", err)
		}
		if got := drain(t, waited); len(got) != 4 {
			t.Fatalf("the consumer waited for had %d events, want 4", len(got))
		}
		synctest.Wait()
		if err := stuck.Err(); !errors.Is(err, broker.ErrSlow) {
			t.Fatalf("blocked consumer: Err() = %v, want ErrSlow", err)
		}
		if err := waited.Err(); err != nil {
			t.Fatalf("the consumer waited for: Err() = %v, want nil", err)
		}
		waited.SetBlocked(true)
		synctest.Wait()
		if err := waited.Err(); !errors.Is(err, broker.ErrSlow) {
			t.Fatalf("a waited-for consumer that blocked: Err() = %v, want ErrSlow", err)
		}
		if st := b.Stats(); st.CutOff != 2 {
			t.Errorf("cut off %d, want 2", st.CutOff)
		}
	})
}

// TestPeekAndConsume: Peek shows waiting events without removing them, replay first;
// they count against the limit until consumed.
func TestPeekAndConsume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{Buffer: 4, History: 10})
		for i := range 3 {
			publish(t, b, broker.Message{Data: fmt.Appendf(nil, "old%d", i)})
		}
		s := subscribe(t, b, broker.Request{Resume: true, LastEventID: "0"})
		for i := range 4 {
			publish(t, b, broker.Message{Data: fmt.Appendf(nil, "new%d", i)})
		}
		synctest.Wait()
		var got []string
		for {
			evs, err := s.Peek(nil, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) == 0 {
				break
			}
			again, _ := s.Peek(nil, 2)
			if again[0] != evs[0] {
				t.Fatalf("a second Peek began with %s, want %s again", again[0].Data, evs[0].Data)
			}
			for _, ev := range evs {
				if ev.Name != broker.NameMissed {
					got = append(got, string(ev.Data))
				}
			}
			s.SetBlocked(true) // full and blocked: a fifth live event would cut it off
			s.Consume(len(evs))
			s.SetBlocked(false)
		}
		if want := "[old0 old1 old2 new0 new1 new2 new3]"; fmt.Sprint(got) != want {
			t.Fatalf("peeked %v, want %s", got, want)
		}
		if err := s.Err(); err != nil {
			t.Fatalf("Err() = %v", err)
		}
		if n := s.Sent(); n != 8 { // the missed notice too: id 0 is not one crier made
			t.Errorf("Sent() = %d, want 8", n)
		}
	})
}

// TestAbandonedIsNotCutOff: a subscription whose client left keeps receiving nothing
// until its stream's end is reported, and is not cut off as slow meanwhile (which would
// announce its departure early, out of the pacing); Close then announces it once.
func TestAbandonedIsNotCutOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{Buffer: 4, Presence: true})
		gone := subscribe(t, b, broker.Request{})
		other := subscribe(t, b, broker.Request{})
		drain(t, gone)
		drain(t, other)

		gone.Abandon()
		for i := range 20 {
			publish(t, b, broker.Message{Data: fmt.Appendf(nil, "%d", i)})
			drain(t, other)
		}
		if err := gone.Err(); err != nil {
			t.Fatalf("abandoned subscription after 20 events, limit 4: Err() = %v, want nil", err)
		}
		if evs, _ := gone.Take(nil); len(evs) != 0 {
			t.Errorf("abandoned subscription queued %d events, want none", len(evs))
		}
		if st := b.Stats(); st.CutOff != 0 {
			t.Errorf("cut off %d subscribers, want 0", st.CutOff)
		}

		gone.Close()
		got := drain(t, other)
		if len(got) != 1 || got[0].Name != "user_left" || decodePresence(t, got[0]).Subscriber != gone.ID() {
			t.Fatalf("after Close the other got %v, want one user_left for the abandoned one", names(got))
		}
	})
}
