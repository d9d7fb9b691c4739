package sse_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers/sse"
)

// BenchmarkEncodeEvent (named for the figures in BENCHMARKS.md) encodes a 100-byte JSON event, once per publish.
func BenchmarkEncodeEvent(b *testing.B) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"json100", append([]byte(`{"t":1795604622279668000,"seq":42,"pad":"`), append(bytes.Repeat([]byte("x"), 55), `"}`...)...)},
		{"lines", bytes.Repeat([]byte("line of text\n"), 8)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ev := &broker.Event{ID: 1795604622279668, Name: "order_shipped", Data: tc.data, Time: time.Now()}
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.data)))
			for b.Loop() {
				_ = sse.Encode(ev)
			}
		})
	}
}
