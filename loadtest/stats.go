package main

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// A histogram records durations in microseconds into log-linear buckets: exact below
// 64 µs, then 64 buckets per power of two (under 1.6% error), up to about 12 days.
// Recording is one atomic add, so every stream records into it directly; shards keep
// streams on different cores off each other's cache lines.
type histogram struct {
	shards [histShards]histShard
	max    atomic.Int64
}

const (
	histSub    = 64
	histExp    = 40
	histShards = 8
)

type histShard struct {
	counts [histSub * (histExp + 1)]atomic.Uint64
	_      [64]byte
}

func histIndex(us int64) int {
	if us < histSub {
		return int(max(us, 0))
	}
	e := bits.Len64(uint64(us)) - 7 // us>>e is in [64, 128)
	i := (e+1)*histSub + int(us>>e) - histSub
	return min(i, histSub*(histExp+1)-1)
}

// histValue is the middle of bucket i.
func histValue(i int) float64 {
	if i < histSub {
		return float64(i)
	}
	e := i/histSub - 1
	lo := float64(int64(i%histSub+histSub) << e)
	return lo + float64(int64(1)<<e)/2
}

// record adds one duration in nanoseconds; shard is any number, such as a stream index.
func (h *histogram) record(shard int, ns int64) {
	us := max(ns, 0) / 1000
	h.shards[shard%histShards].counts[histIndex(us)].Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// summary is a histogram's count and percentiles, in milliseconds.
type summary struct {
	count          uint64
	p50, p99, p999 float64
	max            float64
}

func (h *histogram) summary() summary {
	var counts [histSub * (histExp + 1)]uint64
	var total uint64
	for s := range h.shards {
		for i := range counts {
			c := h.shards[s].counts[i].Load()
			counts[i] += c
			total += c
		}
	}
	s := summary{count: total, max: float64(h.max.Load()) / 1000}
	if total == 0 {
		return s
	}
	at := func(q float64) float64 {
		rank := uint64(math.Ceil(q * float64(total)))
		var seen uint64
		for i, c := range counts {
			seen += c
			if seen >= rank {
				return min(histValue(i)/1000, s.max)
			}
		}
		return s.max
	}
	s.p50, s.p99, s.p999 = at(0.50), at(0.99), at(0.999)
	return s
}
