package main

import (
	"math"
	"time"
)

// result is the final machine-readable line of a run. Fields that do not apply to a
// scenario are left out; counts of failures are always present, so "lost":0 is a claim.
type result struct {
	Scenario string `json:"scenario"`
	OK       *bool  `json:"ok,omitempty"` // smoke only: every phase met its checks
	Error    string `json:"error,omitempty"`

	Streams        int64 `json:"streams"`         // open while measuring
	FailedStreams  int64 `json:"failed_streams"`  // could not open (503 excluded)
	RefusedStreams int64 `json:"refused_streams"` // answered 503
	DroppedStreams int64 `json:"dropped_streams"` // ended by the server mid-run

	Published        int64   `json:"published,omitempty"`
	PublishedPerSec  float64 `json:"published_per_sec,omitempty"` // publishes answered 200 per second reached
	PublishErrors    int64   `json:"publish_errors"`
	Refused          int64   `json:"refused"`           // publishes answered 503, not accepted
	Offered          int64   `json:"offered,omitempty"` // overload: publishes the open-loop schedule called for
	Unsent           int64   `json:"unsent,omitempty"`  // overload: of those, due while the publisher awaited an answer
	Deliveries       int64   `json:"deliveries"`
	Expected         int64   `json:"expected_deliveries,omitempty"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	Lost             int64   `json:"lost"`
	LostOpen         int64   `json:"lost_open"`      // of those, owed to streams still open at the end (the rest: to streams the server ended)
	Duplicates       int64   `json:"duplicates"`     // or reordered
	IDRegressions    int64   `json:"id_regressions"` // ids not strictly increasing
	Malformed        int64   `json:"malformed,omitempty"`
	P50              float64 `json:"p50_ms"` // publish-to-receive
	P99              float64 `json:"p99_ms"`
	P999             float64 `json:"p999_ms"`
	Max              float64 `json:"max_ms"`
	PublishP50       float64 `json:"publish_p50_ms,omitempty"` // POST /publish round trip
	PublishP99       float64 `json:"publish_p99_ms,omitempty"`
	PublishMax       float64 `json:"publish_max_ms,omitempty"`
	WindowStalls     int64   `json:"window_stalls,omitempty"`

	KiBPerStream float64 `json:"kib_per_stream,omitempty"`
	RSSBeforeKiB int64   `json:"rss_before_kib,omitempty"`
	RSSAfterKiB  int64   `json:"rss_after_kib,omitempty"`
	OpenSeconds  float64 `json:"open_seconds,omitempty"` // time to open every stream

	SequentialAttaches   int64    `json:"sequential_attaches,omitempty"`
	SequentialSeconds    float64  `json:"sequential_seconds,omitempty"`
	SequentialDeliveries int64    `json:"sequential_deliveries,omitempty"`
	BatchedAttaches      int64    `json:"batched_attaches,omitempty"`
	Batch                int64    `json:"batch,omitempty"`
	BatchedSeconds       float64  `json:"batched_seconds,omitempty"`
	BatchedDeliveries    int64    `json:"batched_deliveries,omitempty"`
	PresenceExpected     int64    `json:"presence_expected,omitempty"`
	PresenceIncomplete   bool     `json:"presence_incomplete,omitempty"`
	PresenceSeconds      float64  `json:"presence_seconds,omitempty"` // herd: until every new_user arrived
	ArrivalSeconds       float64  `json:"arrival_seconds,omitempty"`  // herd: the window the clients arrive in
	LiveSeconds          float64  `json:"live_seconds,omitempty"`     // herd: until every stream had a live event
	Resumed              int64    `json:"resumed,omitempty"`          // herd: streams given the missed event from history
	Missed               int64    `json:"missed"`                     // missed notices received
	Live                 int64    `json:"live,omitempty"`             // herd: streams that got the live event
	HeartbeatsReceived   int64    `json:"heartbeats,omitempty"`
	ServerCPU            float64  `json:"server_cpu"` // share of one core while measuring; -1: unknown
	ToolCPU              float64  `json:"tool_cpu"`
	ServerCPUSeconds     float64  `json:"server_cpu_seconds"` // CPU time over the same interval
	ToolCPUSeconds       float64  `json:"tool_cpu_seconds"`
	ServerPID            int      `json:"server_pid,omitempty"`
	Seconds              float64  `json:"seconds"` // wall time of the whole run
	Phases               []result `json:"phases,omitempty"`
	Points               []point  `json:"points,omitempty"`
}

// point is one number of streams of a chart series.
type point struct {
	Streams          int64   `json:"streams"`
	KiBPerStream     float64 `json:"kib_per_stream"`
	P50              float64 `json:"p50_ms"`
	P99              float64 `json:"p99_ms"`
	Max              float64 `json:"max_ms"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	Lost             int64   `json:"lost"`
}

// round3 keeps three decimals: microseconds for milliseconds.
func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// fillLoad copies a finished phase's figures into r.
func (r *result) fillLoad(ph *phase, p *pool) {
	r.Streams = ph.streams
	r.Published = ph.published.Load()
	r.PublishErrors = ph.pubErrors.Load()
	r.Refused = ph.refused.Load()
	r.Offered, r.Unsent = ph.offered.Load(), ph.unsent.Load()
	r.Deliveries = ph.unique.Load() + ph.dups.Load()
	r.Expected = ph.expected()
	r.Lost = max(0, r.Expected-ph.unique.Load())
	r.LostOpen = ph.owed(p)
	r.Duplicates = ph.dups.Load()
	r.IDRegressions = ph.idBack.Load()
	r.Malformed = ph.malformed.Load()
	if start, end := ph.pubStart.Load(), ph.pubEnd.Load(); end > start {
		r.PublishedPerSec = math.Round(float64(r.Published) / time.Duration(end-start).Seconds())
	}
	if start, last := ph.pubStart.Load(), ph.lastRecv.Load(); last > start {
		r.DeliveriesPerSec = math.Round(float64(r.Deliveries) / time.Duration(last-start).Seconds())
	}
	s := ph.lat.summary()
	r.P50, r.P99, r.P999, r.Max = round3(s.p50), round3(s.p99), round3(s.p999), round3(s.max)
	ps := ph.pubLat.summary()
	r.PublishP50, r.PublishP99, r.PublishMax = round3(ps.p50), round3(ps.p99), round3(ps.max)
	if ph.win != nil {
		r.WindowStalls = ph.win.slow.Load()
	}
	r.fillStreams(p)
}

func (r *result) fillStreams(p *pool) {
	r.FailedStreams = p.failed.Load()
	r.RefusedStreams = p.refused.Load()
	r.DroppedStreams = p.dropped.Load()
	r.HeartbeatsReceived = p.heartbeats.Load()
}
