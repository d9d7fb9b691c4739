package redisbus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/broker/redisbus"
	"github.com/crierhq/crier/internal/testenv"
)

func publishOn(t *testing.T, n *node, topic, data string) uint64 {
	t.Helper()
	r, err := n.Publish(context.Background(), broker.Message{Topic: topic, Data: []byte(data)})
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// resumeOn resumes topics after last on n and returns what was replayed and whether a
// missed notice came first.
func resumeOn(t *testing.T, n *node, last uint64, topics ...string) ([]string, bool) {
	t.Helper()
	s, err := n.Subscribe(broker.Request{Topics: topics, Resume: true, LastEventID: broker.FormatID(last)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs, _ := s.Take(nil)
	var data []string
	missed := false
	for _, ev := range evs {
		switch {
		case ev.Name == broker.NameMissed:
			missed = true
		case ev.Retained():
			data = append(data, string(ev.Data))
		}
	}
	return data, missed
}

// The contract's example across two nodes: history is kept per topic in Redis, and a
// node that has seen none of it (it starts afterwards) serves the resume from there.
func TestClusterHistoryPerTopic(t *testing.T) {
	r := testenv.StartRedis(t)
	prefix := newPrefix()
	a := startNode(t, r.URL, prefix, broker.Options{History: 5}, nil)
	q1 := publishOn(t, a, "q", "q1")
	for i := range 60 {
		publishOn(t, a, "busy", strconv.Itoa(i))
	}
	publishOn(t, a, "q", "q2")
	publishOn(t, a, "q", "q3")
	b := startNode(t, r.URL, prefix, broker.Options{History: 5}, nil)
	if got, missed := resumeOn(t, b, q1, "q"); missed || !slices.Equal(got, []string{"q2", "q3"}) {
		t.Errorf("resume after q1 on another node: got %v (missed %v), want [q2 q3]", got, missed)
	}
	if got, missed := resumeOn(t, b, q1, "busy"); !missed || len(got) != 5 || got[0] != "55" {
		t.Errorf("resume of busy after q1: got %v (missed %v), want missed then 55..59", got, missed)
	}
	page, err := b.History(context.Background(), "busy", 0, 3)
	if err != nil || len(page.Events) != 3 || string(page.Events[0].Data) != "55" || page.Missed {
		t.Errorf("History(busy, 0, 3) = %+v, %v; want 55 56 57", page, err)
	}
	if page, _ := b.History(context.Background(), "busy", q1, 0); !page.Missed || len(page.Events) != 5 {
		t.Errorf("History(busy, after q1): %d events, missed %v; want 5 and missed", len(page.Events), page.Missed)
	}
	if page, _ := b.History(context.Background(), "q", q1, 0); page.Missed || len(page.Events) != 2 {
		t.Errorf("History(q, after q1): %d events, missed %v; want 2, not missed", len(page.Events), page.Missed)
	}
}

// Presence churn never pushes published events out of history: joins and leaves go to
// the live log only, whose length bound is not history's.
func TestPresenceChurnKeepsHistory(t *testing.T) {
	r := testenv.StartRedis(t)
	prefix := newPrefix()
	tune := func(o *redisbus.Options) { o.Slack = 100 }
	a := startNode(t, r.URL, prefix, broker.Options{History: 10, Presence: true}, tune)
	first := publishOn(t, a, "t", "e0")
	for i := 1; i < 5; i++ {
		publishOn(t, a, "t", fmt.Sprint("e", i))
	}
	for range 1000 {
		s, err := a.Subscribe(broker.Request{})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		raw, _ := r.Do(t, "XINFO", "STREAM", prefix+"log").([]any)
		for i := 0; i+1 < len(raw); i += 2 {
			if n, _ := raw[i+1].(int64); raw[i] == "entries-added" && n >= 2005 {
				return nil
			}
		}
		return errors.New("fewer than 2,000 presence entries in the log")
	})
	b := startNode(t, r.URL, prefix, broker.Options{History: 10}, tune)
	got, missed := resumeOn(t, b, first-1, "t")
	if missed || strings.Join(got, " ") != "e0 e1 e2 e3 e4" {
		t.Errorf("after 2,000 presence entries: got %v (missed %v), want e0..e4 and no missed", got, missed)
	}
}

// Events older than the TTL leave Redis; a topic left empty is forgotten, and a resume
// from before its events learns of the loss.
func TestClusterHistoryTTL(t *testing.T) {
	r := testenv.StartRedis(t)
	prefix := newPrefix()
	opts := broker.Options{History: 100, HistoryTTL: 300 * time.Millisecond}
	a := startNode(t, r.URL, prefix, opts, nil)
	first := publishOn(t, a, "t", "old")
	testenv.Eventually(t, 10*time.Second, func() error {
		if n, _ := r.Do(t, "EXISTS", prefix+"h:t").(int64); n != 0 {
			return errors.New("the topic's history has not expired")
		}
		return nil
	})
	if page, err := a.History(context.Background(), "t", first-1, 0); err != nil || !page.Missed || len(page.Events) != 0 {
		t.Errorf("after expiry: %+v %v, want no events and missed", page, err)
	}
	if page, _ := a.History(context.Background(), "t", first, 0); page.Missed {
		t.Error("after the expired event itself: missed, although nothing after it was lost")
	}
	if mem, _ := r.Do(t, "GET", prefix+"mem").(string); mem != "0" {
		t.Errorf("bytes counted with nothing retained: %s, want 0", mem)
	}
}

// The memory bound evicts the oldest events of any topic first, and a resume from
// before them says so.
func TestClusterHistoryMemory(t *testing.T) {
	r := testenv.StartRedis(t)
	prefix := newPrefix()
	const budget = 32 << 10
	opts := broker.Options{History: 1000, HistoryMemory: budget}
	a := startNode(t, r.URL, prefix, opts, nil)
	data := strings.Repeat("x", 1000)
	var ids []uint64
	for i := range 100 {
		ids = append(ids, publishOn(t, a, fmt.Sprint("t", i%4), data))
	}
	mem, _ := strconv.Atoi(r.Do(t, "GET", prefix+"mem").(string))
	if mem > budget || mem < budget/2 {
		t.Errorf("counted %d bytes, want at most %d and most of it used", mem, budget)
	}
	// What is kept is the newest events, whatever their topic.
	var kept []uint64
	for i := range 4 {
		page, _ := a.History(context.Background(), fmt.Sprint("t", i), 0, 0)
		for _, ev := range page.Events {
			kept = append(kept, ev.ID)
		}
	}
	slices.Sort(kept)
	if len(kept) == 0 || !slices.Equal(kept, ids[len(ids)-len(kept):]) {
		t.Errorf("kept %d events, not the newest ones", len(kept))
	}
	if _, missed := resumeOn(t, a, ids[0], "t1"); !missed {
		t.Error("resume of t1 from the first event: no missed, although memory evicted t1's first events")
	}
}
