package main

import (
	"encoding/json"
	"testing"
)

func TestPayload(t *testing.T) {
	tests := []struct {
		p    payload
		size int
	}{
		{payload{gen: 1, pub: 0, seq: 0, ts: 1732000000000000000}, 100},
		{payload{gen: 12, pub: 3, seq: 123456, ts: 9223372036854775807}, 100},
		{payload{gen: 1, pub: 0, seq: 7, ts: 5}, 10}, // too small to pad
		{payload{gen: 1, pub: 0, seq: 7, ts: 5}, 4096},
	}
	for _, tt := range tests {
		data := appendData(nil, tt.p, tt.size)
		if !json.Valid(data) {
			t.Fatalf("%s is not JSON", data)
		}
		if base := len(appendData(nil, tt.p, 0)); tt.size > base+len(`,"pad":""`) && len(data) != tt.size {
			t.Errorf("%+v size %d: got %d bytes", tt.p, tt.size, len(data))
		}
		got, ok := parseData(data)
		if !ok || got != tt.p {
			t.Errorf("parseData(%s) = %+v, %v; want %+v", data, got, ok, tt.p)
		}
	}
	// Re-encoded by a server: other key order, spaces.
	got, ok := parseData([]byte(`{"pad": "xx", "ts": 5, "seq": 2, "p": 1, "g": 9}`))
	if want := (payload{gen: 9, pub: 1, seq: 2, ts: 5}); !ok || got != want {
		t.Errorf("reordered: got %+v, %v; want %+v", got, ok, want)
	}
	for _, bad := range []string{`{}`, `{"g":1,"p":0,"seq":-1,"ts":1}`, `{"g":1,"p":0,"seq":1,"ts":99999999999999999999}`} {
		if _, ok := parseData([]byte(bad)); ok {
			t.Errorf("parseData(%s) accepted", bad)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := int64(1); i <= 1000; i++ {
		h.record(int(i), i*1_000_000) // 1..1000 ms
	}
	s := h.summary()
	check := func(name string, got, want float64) {
		if got < want*0.98 || got > want*1.02 {
			t.Errorf("%s = %.3f ms, want %.3f ±2%%", name, got, want)
		}
	}
	if s.count != 1000 {
		t.Errorf("count = %d", s.count)
	}
	check("p50", s.p50, 500)
	check("p99", s.p99, 990)
	check("max", s.max, 1000)
	for _, us := range []int64{0, 1, 63, 64, 65, 127, 128, 1000, 123456789} {
		v := histValue(histIndex(us))
		if us > 0 && (v < float64(us)*0.98 || v > float64(us)*1.02+1) {
			t.Errorf("bucket of %d µs is worth %.1f", us, v)
		}
	}
	var empty histogram
	if s := empty.summary(); s.count != 0 || s.p99 != 0 {
		t.Errorf("empty summary %+v", s)
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"http://127.0.0.1:8080", "127.0.0.1:8080", true},
		{"http://localhost:9000/", "127.0.0.1:9000", true},
		{"http://127.3.4.5", "127.3.4.5:80", true},
		{"http://10.0.0.1:8080", "", false},
		{"http://example.com:8080", "", false},
		{"https://127.0.0.1:8080", "", false},
		{"http://[::1]:8080", "", false},
		{"127.0.0.1:8080", "", false},
	}
	for _, tt := range tests {
		got, _, err := parseTarget(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseTarget(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
