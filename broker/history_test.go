package broker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crierhq/crier/broker"
)

// resume subscribes to topics from last and returns the data of what was replayed
// and whether a "missed" notice came first.
func resume(t *testing.T, b *broker.Broker, last uint64, topics ...string) ([]string, bool) {
	t.Helper()
	s := subscribe(t, b, broker.Request{Topics: topics, Resume: true, LastEventID: broker.FormatID(last)})
	defer s.Close()
	var data []string
	missed := false
	for i, ev := range replayed(t, s) {
		if ev.Name == broker.NameMissed {
			if i != 0 {
				t.Errorf("missed is event %d, want first", i)
			}
			missed = true
			continue
		}
		data = append(data, string(ev.Data))
	}
	return data, missed
}

func pub(t *testing.T, b *broker.Broker, topic, data string) uint64 {
	t.Helper()
	return publish(t, b, broker.Message{Topic: topic, Data: []byte(data)}).ID
}

// The contract's example: with -history 5, a client of q that read q1 and comes back
// after 60 events on another topic gets q2 and q3, and no notice of a gap.
func TestHistoryPerTopic(t *testing.T) {
	b := newBroker(t, broker.Options{History: 5})
	q1 := pub(t, b, "q", "q1")
	for i := range 60 {
		pub(t, b, "busy", fmt.Sprint(i))
	}
	pub(t, b, "q", "q2")
	pub(t, b, "q", "q3")
	got, missed := resume(t, b, q1, "q")
	if missed || !slices.Equal(got, []string{"q2", "q3"}) {
		t.Errorf("resume after q1: got %v (missed %v), want [q2 q3] without missed", got, missed)
	}
	// The busy topic's stream did lose events, and says so.
	if _, missed := resume(t, b, q1, "busy"); !missed {
		t.Error("resume of busy after q1: no missed notice, although 55 of its events left")
	}
}

func TestQuietTopicOutlastsBusyOne(t *testing.T) {
	b := newBroker(t, broker.Options{History: 1000})
	first := pub(t, b, "user/42", "hello")
	for i := range 100_000 {
		pub(t, b, "ticker", fmt.Sprint(i))
	}
	pub(t, b, "user/42", "again")
	got, missed := resume(t, b, first-1, "user/42")
	if missed || !slices.Equal(got, []string{"hello", "again"}) {
		t.Errorf("quiet topic: got %v (missed %v), want [hello again]", got, missed)
	}
	if st := b.Stats(); st.Retained != 1002 {
		t.Errorf("Retained = %d, want 1002 (1000 of ticker, 2 of user/42)", st.Retained)
	}
}

// A stream merges its topics and broadcasts in id order.
func TestResumeMergesTopics(t *testing.T) {
	b := newBroker(t, broker.Options{History: 3})
	start := pub(t, b, "x", "x0")
	for i := range 4 {
		pub(t, b, "a", fmt.Sprint("a", i))
		pub(t, b, "", fmt.Sprint("all", i))
		pub(t, b, "b", fmt.Sprint("b", i))
	}
	got, missed := resume(t, b, start, "a", "b")
	want := []string{"a1", "all1", "b1", "a2", "all2", "b2", "a3", "all3", "b3"}
	if !missed || !slices.Equal(got, want) {
		t.Errorf("got %v (missed %v), want %v after a missed notice", got, missed, want)
	}
}

func TestHistoryTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{History: 100, HistoryTTL: time.Minute})
		a := pub(t, b, "t", "a")
		time.Sleep(30 * time.Second)
		pub(t, b, "t", "b")
		time.Sleep(45 * time.Second) // a is 75 s old, b 45 s

		if got, missed := resume(t, b, a, "t"); missed || !slices.Equal(got, []string{"b"}) {
			t.Errorf("after a: got %v (missed %v), want [b]", got, missed)
		}
		if got, missed := resume(t, b, a-1, "t"); !missed || !slices.Equal(got, []string{"b"}) {
			t.Errorf("before a: got %v (missed %v), want [b] after a missed notice", got, missed)
		}
		time.Sleep(20 * time.Second) // b expires too, with nothing published or read
		synctest.Wait()
		if st := b.Stats(); st.Retained != 0 || st.RetainedBytes != 0 {
			t.Errorf("everything expired, yet history holds %d events in %d bytes", st.Retained, st.RetainedBytes)
		}
		if got, missed := resume(t, b, a, "t"); !missed || len(got) != 0 {
			t.Errorf("after a, all expired: got %v (missed %v), want only a missed notice", got, missed)
		}
	})
}

func TestHistoryMemoryBound(t *testing.T) {
	const budget = 64 << 10
	b := newBroker(t, broker.Options{History: 1000, HistoryMemory: budget})
	data := strings.Repeat("x", 1000)
	var ids []uint64
	topics := []string{"a", "b", "c", "d"}
	for i := range 200 {
		ids = append(ids, pub(t, b, topics[i%len(topics)], data))
	}
	st := b.Stats()
	if st.RetainedBytes > budget || st.Retained == 0 {
		t.Fatalf("history holds %d events in %d bytes, want some within %d", st.Retained, st.RetainedBytes, budget)
	}
	// What is left is the newest events, whatever their topic: the oldest left first.
	kept := ids[len(ids)-st.Retained:]
	for _, tc := range []struct {
		topic string
		after uint64
	}{{"a", 0}, {"b", 0}, {"c", 0}, {"d", 0}} {
		page, err := b.History(context.Background(), tc.topic, tc.after, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Events {
			if ev.ID < kept[0] {
				t.Errorf("topic %s keeps %d, older than the oldest kept overall %d", tc.topic, ev.ID, kept[0])
			}
		}
	}
	// A stream that read up to just before the newest event that left misses something
	// only when it follows that event's topic: the others lost theirs earlier.
	lost := len(ids) - st.Retained - 1
	for i, topic := range topics {
		_, missed := resume(t, b, ids[lost]-1, topic)
		if want := i == lost%len(topics); missed != want {
			t.Errorf("topic %s after %d: missed %v, want %v", topic, ids[lost]-1, missed, want)
		}
	}
	if _, missed := resume(t, b, ids[0]-1, "d"); !missed {
		t.Error("from before the first event: no missed notice, although memory pushed events out")
	}
}

func TestHistoryPage(t *testing.T) {
	b := newBroker(t, broker.Options{History: 3})
	var ids []uint64
	for i := range 5 {
		ids = append(ids, pub(t, b, "t", fmt.Sprint(i)))
	}
	pub(t, b, "other", "x")
	for _, tc := range []struct {
		name       string
		topic      string
		after      uint64
		limit      int
		want       string
		wantMissed bool
	}{
		{"everything retained", "t", 0, 0, "[2 3 4]", false},
		{"limited", "t", 0, 2, "[2 3]", false},
		{"after a retained id", "t", ids[2], 0, "[3 4]", false},
		{"after an evicted id", "t", ids[0], 0, "[2 3 4]", true},
		{"after the newest evicted id", "t", ids[1], 0, "[2 3 4]", false},
		{"unknown topic", "none", 0, 0, "[]", false},
		{"unknown topic, after an id", "none", ids[4], 0, "[]", false},
		{"from before this broker started", "t", 1, 0, "[2 3 4]", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, err := b.History(context.Background(), tc.topic, tc.after, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, ev := range page.Events {
				got = append(got, string(ev.Data))
			}
			if fmt.Sprint(got) != tc.want || page.Missed != tc.wantMissed {
				t.Errorf("got %v missed %v, want %s missed %v", got, page.Missed, tc.want, tc.wantMissed)
			}
		})
	}
}

// An idempotency key lives as long as its event: once the event expires, the key
// publishes anew.
func TestKeyLivesWithItsEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.Options{History: 10, HistoryTTL: time.Minute})
		m := broker.Message{Topic: "t", Data: []byte("1"), Key: "k", Publisher: "p"}
		first := publish(t, b, m)
		time.Sleep(59 * time.Second)
		if r := publish(t, b, m); !r.Duplicate || r.ID != first.ID {
			t.Errorf("retry within the TTL: %+v, want a duplicate of %d", r, first.ID)
		}
		time.Sleep(2 * time.Second)
		if r := publish(t, b, m); r.Duplicate {
			t.Errorf("retry after the event expired: %+v, want a new event", r)
		}
	})
}
