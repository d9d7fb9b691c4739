package redisbus_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/broker/redisbus"
	"github.com/crierhq/crier/internal/testenv"
)

// take returns the next event of s within 10s.
func take(t *testing.T, s *broker.Subscription, pending *[]*broker.Event) *broker.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for len(*pending) == 0 {
		select {
		case <-s.Ready():
		case <-deadline:
			t.Fatal("no event within 10s")
		}
		evs, err := s.Take(nil)
		if len(evs) == 0 && err != nil {
			t.Fatalf("subscription ended: %v", err)
		}
		*pending = evs
	}
	ev := (*pending)[0]
	*pending = (*pending)[1:]
	return ev
}

type reader struct {
	t       *testing.T
	s       *broker.Subscription
	pending []*broker.Event
}

func (r *reader) next() *broker.Event { r.t.Helper(); return take(r.t, r.s, &r.pending) }

// nextRetained skips presence events.
func (r *reader) nextRetained() *broker.Event {
	r.t.Helper()
	for {
		if ev := r.next(); ev.Retained() || ev.Name == broker.NameMissed {
			return ev
		}
	}
}

func sub(t *testing.T, b *node, req broker.Request) *reader {
	t.Helper()
	s, err := b.Subscribe(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &reader{t: t, s: s}
}

func count(t *testing.T, ev *broker.Event) (string, int) {
	t.Helper()
	var p struct {
		Subscriber  string
		Subscribers int
	}
	if err := json.Unmarshal(ev.Data, &p); err != nil {
		t.Fatalf("%s: %v", ev.Data, err)
	}
	return p.Subscriber, p.Subscribers
}

func TestTwoNodesOneOrderAndClusterPresence(t *testing.T) {
	r := testenv.StartRedis(t)
	prefix := newPrefix()
	opts := broker.Options{History: 100, Presence: true}
	a := startNode(t, r.URL, prefix, opts, nil)
	b := startNode(t, r.URL, prefix, opts, nil)

	ra := sub(t, a, broker.Request{})
	if ev := ra.next(); ev.Name != broker.NameNewUser {
		t.Fatalf("got %s, want new_user", ev.Name)
	} else if who, n := count(t, ev); who != ra.s.ID() || n != 1 {
		t.Fatalf("new_user %s %d, want %s 1", who, n, ra.s.ID())
	}
	rb := sub(t, b, broker.Request{})
	for _, rd := range []*reader{ra, rb} {
		ev := rd.next()
		if who, n := count(t, ev); ev.Name != broker.NameNewUser || who != rb.s.ID() || n != 2 {
			t.Fatalf("reader %p (a %p): got %s %s id %d, want new_user of %s with 2 (cluster-wide); a is %s", rd, ra, ev.Name, ev.Data, ev.ID, rb.s.ID(), ra.s.ID())
		}
	}
	// Publishing on both nodes at once: both streams see every event in one order.
	var wg sync.WaitGroup
	for _, n := range []*node{a, b} {
		wg.Go(func() {
			for i := range 50 {
				if _, err := n.Publish(context.Background(), broker.Message{Data: fmt.Appendf(nil, "%d", i)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for i := range 100 {
		ea, eb := ra.nextRetained(), rb.nextRetained()
		if ea.ID != eb.ID || string(ea.Data) != string(eb.Data) {
			t.Fatalf("event %d: node A got %d %s, node B got %d %s", i, ea.ID, ea.Data, eb.ID, eb.Data)
		}
	}
	rb.s.Close()
	ev := ra.next()
	if who, n := count(t, ev); ev.Name != broker.NameUserLeft || who != rb.s.ID() || n != 1 {
		t.Fatalf("got %s %s, want user_left of %s with 1", ev.Name, ev.Data, rb.s.ID())
	}
}

// TestResumeOnAnotherNode hops a client between nodes, resuming each time with the last
// id it saw, while events keep coming; one node starts after the first events, so its
// replay comes from Redis. The pieces join without a gap or a duplicate.
func TestResumeOnAnotherNode(t *testing.T) {
	r := testenv.StartRedis(t)
	prefix := newPrefix()
	opts := broker.Options{History: 1000}
	a := startNode(t, r.URL, prefix, opts, nil)
	const n = 600
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			topic := "t"
			if i%4 == 0 {
				topic = "u"
			}
			if _, err := a.Publish(context.Background(), broker.Message{Topic: topic, Data: fmt.Appendf(nil, "%d", i)}); err != nil {
				t.Error(err)
			}
		}
	})
	want := n - n/4
	rd := sub(t, a, broker.Request{Topics: []string{"t"}, Resume: true, LastEventID: "0"})
	var got []string
	var b *node
	for hop := 0; len(got) < want; {
		ev := rd.nextRetained()
		if ev.Name == broker.NameMissed {
			if len(got) > 0 {
				t.Fatalf("hop %d: missed %s", hop, ev.Data)
			}
			continue
		}
		got = append(got, string(ev.Data))
		if len(got)%100 == 0 && len(got) < want {
			hop++
			if b == nil {
				b = startNode(t, r.URL, prefix, opts, nil)
			}
			to := []*node{a, b}[hop%2]
			rd.s.Close()
			rd = sub(t, to, broker.Request{Topics: []string{"t"}, Resume: true, LastEventID: broker.FormatID(ev.ID)})
		}
	}
	wg.Wait()
	k := 0
	for i := range n {
		if i%4 == 0 {
			continue
		}
		if got[k] != fmt.Sprint(i) {
			t.Fatalf("event %d: got %s, want %d", k, got[k], i)
		}
		k++
	}
}

// TestNodeLeavesAndDies: a node that closes announces that its subscribers left; one
// that stops beating is reaped by the others, with the same announcements.
func TestNodeLeavesAndDies(t *testing.T) {
	r := testenv.StartRedis(t)
	prefix := newPrefix()
	opts := broker.Options{Presence: true}
	fast := func(o *redisbus.Options) { o.Beat, o.NodeTTL = 50*time.Millisecond, 300*time.Millisecond }
	a := startNode(t, r.URL, prefix, opts, fast)
	ra := sub(t, a, broker.Request{})
	ra.next() // its own new_user
	expect := func(name, who string, want int) {
		t.Helper()
		ev := ra.next()
		if got, n := count(t, ev); ev.Name != name || got != who || n != want {
			t.Fatalf("got %s %s, want %s of %s with %d", ev.Name, ev.Data, name, who, want)
		}
	}

	b := startNode(t, r.URL, prefix, opts, fast)
	rb := sub(t, b, broker.Request{})
	expect(broker.NameNewUser, rb.s.ID(), 2)
	b.stop() // a clean shutdown: the broker ends its streams, the bus leaves
	expect(broker.NameUserLeft, rb.s.ID(), 1)

	// A node that vanishes: its Redis connections are cut without a goodbye.
	c := startNode(t, r.URL, prefix, opts, fast)
	rc := sub(t, c, broker.Request{})
	expect(broker.NameNewUser, rc.s.ID(), 2)
	redisbus.Vanish(c.bus)
	start := time.Now()
	expect(broker.NameUserLeft, rc.s.ID(), 1)
	t.Logf("dead node reaped after %s", time.Since(start).Round(time.Millisecond))
}

// TestLostEntriesAreMissedInBand: when Redis loses the log (here: its newest id is
// deleted, as after a restart without persistence), the next entry does not follow the
// last one read. The node's stream stays open and gets one missed event, whose id lets
// a client that reconnects with it resume from there, then the events published since;
// a resume from before the gap reports it too.
func TestLostEntriesAreMissedInBand(t *testing.T) {
	r := testenv.StartRedis(t)
	prefix := newPrefix()
	a := startNode(t, r.URL, prefix, broker.Options{History: 10, Presence: true}, nil)
	rd := sub(t, a, broker.Request{})
	first, err := a.Publish(context.Background(), broker.Message{Data: []byte(`1`)})
	if err != nil {
		t.Fatal(err)
	}
	if ev := rd.nextRetained(); ev.ID != first.ID {
		t.Fatalf("got %d, want %d", ev.ID, first.ID)
	}
	redisDo(t, r.Addr, "DEL", prefix+"last", prefix+"floor")
	second, err := a.Publish(context.Background(), broker.Message{Data: []byte(`2`)})
	if err != nil {
		t.Fatal(err)
	}
	ev := rd.nextRetained()
	var notice struct{ Message, LastEventID string }
	if err := json.Unmarshal(ev.Data, &notice); err != nil || ev.Name != broker.NameMissed {
		t.Fatalf("after the loss: got %s %s (%v), want missed", ev.Name, ev.Data, err)
	}
	// The last entry read may be the stream's own new_user, appended after event 1.
	if last, ok := broker.ParseID(notice.LastEventID); !ok || last < first.ID || last >= ev.ID || notice.Message == "" {
		t.Errorf("missed %d says %+v, want a message and lastEventId at or after %d", ev.ID, notice, first.ID)
	}
	if ev.ID <= first.ID || ev.ID >= second.ID {
		t.Errorf("missed has id %d, want one between %d and %d", ev.ID, first.ID, second.ID)
	}
	if got := rd.nextRetained(); got.ID != second.ID {
		t.Fatalf("after missed: got %d %s, want the event published since (%d)", got.ID, got.Data, second.ID)
	}
	if err := rd.s.Err(); err != nil {
		t.Fatalf("the stream ended: %v", err)
	}
	if got := a.Stats().Gaps; got != 1 {
		t.Errorf("Stats().Gaps = %d, want 1", got)
	}

	// A client that reconnects with the notice's id resumes without another notice.
	after := sub(t, a, broker.Request{Resume: true, LastEventID: broker.FormatID(ev.ID)})
	if got := after.nextRetained(); got.ID != second.ID {
		t.Fatalf("resume from the notice: got %s %s, want the event published since", got.Name, got.Data)
	}
	again := sub(t, a, broker.Request{Resume: true, LastEventID: broker.FormatID(first.ID)})
	if got := again.nextRetained(); got.Name != broker.NameMissed {
		t.Fatalf("resume from before the loss: got %s %s, want missed", got.Name, got.Data)
	}
	if got := again.nextRetained(); string(got.Data) != "2" {
		t.Fatalf("resume from before the loss: got %s, want the event published since", got.Data)
	}
}

// redisDo sends one command over a raw connection.
func redisDo(t *testing.T, addr string, args ...string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		cmd += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
}
