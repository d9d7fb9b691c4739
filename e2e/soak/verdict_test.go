package main

import (
	"testing"
	"time"
)

// series makes one sample a minute from RSS values (KiB), with goroutines and descriptors
// from g (the same for every sample when g has one value).
func series(rss []int64, g ...int64) []sample {
	out := make([]sample, len(rss))
	for i, r := range rss {
		gr := g[0]
		if i < len(g) {
			gr = g[i]
		}
		out[i] = sample{at: time.Duration(i) * time.Minute, rssKiB: r, goroutines: gr, fds: 10000}
	}
	return out
}

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		name    string
		samples []sample
		flat    bool
	}{
		// The soak of 2026-11-25: the heap grew for ten minutes, then stopped.
		{"heap settling", series([]int64{52912, 53640, 58000, 64000, 69000, 73128, 76272, 77112, 78464, 76832, 76776}, 14), true},
		{"steady", series([]int64{50000, 50000, 50100, 50050, 50000, 50100}, 14), true},
		{"leak", series([]int64{50000, 50000, 56000, 62000, 68000, 74000, 80000, 86000}, 14), false},
		{"goroutine leak", series([]int64{50000, 50000, 50000, 50000, 50000, 50000}, 14, 14, 20, 26, 32, 38), false},
		{"too short to tell", series([]int64{50000, 90000, 130000}, 14), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := verdict(tc.samples)
			if (err == nil) != tc.flat {
				t.Errorf("verdict = %v, want flat %v", err, tc.flat)
			}
		})
	}
}
