package sse_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers/sse"
	"github.com/crierhq/crier/internal/ssetest"
)

func TestEncode(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   broker.Event
		want string
	}{
		{"plain", broker.Event{ID: 7, Name: "order_shipped", Data: []byte(`{"order":42}`)},
			"id: 7\nevent: order_shipped\ndata: {\"order\":42}\n\n"},
		{"no name is message", broker.Event{ID: 1, Data: []byte("hi")},
			"id: 1\nevent: message\ndata: hi\n\n"},
		{"empty data still dispatches", broker.Event{ID: 1, Name: "x"},
			"id: 1\nevent: x\ndata: \n\n"},
		{"LF", broker.Event{ID: 2, Name: "m", Data: []byte("a\nb")},
			"id: 2\nevent: m\ndata: a\ndata: b\n\n"},
		{"CRLF", broker.Event{ID: 2, Name: "m", Data: []byte("a\r\nb")},
			"id: 2\nevent: m\ndata: a\ndata: b\n\n"},
		{"CR", broker.Event{ID: 2, Name: "m", Data: []byte("a\rb")},
			"id: 2\nevent: m\ndata: a\ndata: b\n\n"},
		{"trailing and blank lines", broker.Event{ID: 2, Name: "m", Data: []byte("a\n\nb\n")},
			"id: 2\nevent: m\ndata: a\ndata: \ndata: b\ndata: \n\n"},
		{"forged fields stay data", broker.Event{ID: 3, Name: "m", Data: []byte("x\n\nid: 99\nevent: evil\ndata: y")},
			"id: 3\nevent: m\ndata: x\ndata: \ndata: id: 99\ndata: event: evil\ndata: data: y\n\n"},
		{"line breaks dropped from the name", broker.Event{ID: 4, Name: "a\r\nevent: b\x00", Data: []byte("d")},
			"id: 4\nevent: aevent: b\ndata: d\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(sse.Encode(&tc.ev)); got != tc.want {
				t.Errorf("Encode:\ngot  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// FuzzEncode proves that no name or data can forge another field or event: a
// standard parser reads back exactly one event with the id, the name (less line breaks
// and NUL) and the data (line breaks normalised to LF) that went in.
func FuzzEncode(f *testing.F) {
	f.Add(uint64(1), "message", []byte("hello"))
	f.Add(uint64(2), "a\nb", []byte("x\r\ny\rz\n"))
	f.Add(uint64(3), "", []byte("\n\nid: 5\nevent: x\ndata: y\n\n"))
	f.Add(uint64(4), "\r", []byte(": comment\nretry: 1\n"))
	f.Fuzz(func(t *testing.T, id uint64, name string, data []byte) {
		wire := sse.Encode(&broker.Event{ID: id, Name: name, Data: data})
		p := ssetest.NewReader(bytes.NewReader(wire))
		got, err := p.Next()
		if err != nil {
			t.Fatalf("no event parsed from %q: %v", wire, err)
		}
		wantName := strings.NewReplacer("\r", "", "\n", "", "\x00", "").Replace(name)
		if wantName == "" {
			wantName = "message"
		}
		wantData := strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\r", "\n")
		if got.ID != broker.FormatID(id) || got.Type != wantName || got.Data != wantData || got.Retry != "" {
			t.Fatalf("round trip of (%d, %q, %q):\ngot  %+v\nwire %q", id, name, data, got, wire)
		}
		if extra, err := p.Next(); err == nil {
			t.Fatalf("a second event was forged: %+v from %q", extra, wire)
		}
		if p.Comments() != 0 {
			t.Fatalf("a comment was forged in %q", wire)
		}
	})
}

// published runs msg through a broker that encodes with Encode and returns the event a
// subscriber gets: only the broker gives an event its wire bytes.
func published(t *testing.T, msg broker.Message) *broker.Event {
	t.Helper()
	b := broker.New(broker.Options{Encode: sse.Encode})
	defer b.Close()
	sub, err := b.Subscribe(broker.Request{Topics: []string{msg.Topic}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := b.Publish(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	<-sub.Ready()
	evs, _ := sub.Take(nil)
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1", len(evs))
	}
	return evs[0]
}

func TestAppendEvent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		topic  string
		tagged bool
		line   string // what precedes the encoded event
	}{
		{"untagged", "a", false, ""},
		{"tagged", "orders/eu", true, "topic: orders/eu\n"},
		{"tagged broadcast", "", true, ""},
		{"line breaks dropped from the topic", "a\r\nid: 9\x00", true, "topic: aid: 9\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := published(t, broker.Message{Topic: tc.topic, Data: []byte("x")})
			want := tc.line + string(sse.Encode(ev))
			got := sse.AppendEvent([]byte("<"), ev, tc.tagged)
			if string(got) != "<"+want {
				t.Errorf("AppendEvent:\ngot  %q\nwant %q", got[1:], want)
			}
			if n := sse.EventLen(ev, tc.tagged); n != len(want) {
				t.Errorf("EventLen = %d, want %d", n, len(want))
			}
		})
	}
}
