package broker

import "time"

// Stats are running totals since the broker started, for metrics.
type Stats struct {
	Subscribers int    // open subscriptions now
	Attached    uint64 // subscriptions opened
	Detached    uint64 // subscriptions ended, for any reason
	Broadcasts  uint64 // events published with no topic
	Topical     uint64 // events published to a topic
	Presence    uint64 // new_user and user_left events sent
	Deliveries  uint64 // events queued to subscribers (live, not replayed)
	Replayed    uint64 // events queued from history on resume, "missed" notices included
	CutOff      uint64 // subscribers cut off for falling behind
	Duplicates  uint64 // publishes answered from an idempotency key, not sent again
	Gaps        uint64 // entries found lost in a cluster's log, each told to the open streams
	Retained    int    // events in this node's history now
	// RetainedBytes is what this node's history takes now, as Options.HistoryMemory
	// counts it.
	RetainedBytes int64
	Refused       uint64 // publishes refused with ErrBusy: delivery stayed behind for PublishWait
	// PublishWaits counts the publishes that found delivery behind and waited for room
	// (the refused ones included), and PublishWaited is the time they waited, in all.
	PublishWaits  uint64
	PublishWaited time.Duration
}

// Stats returns the broker's totals.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	subscribers, retained, bytes := len(b.members), b.hist.held, b.hist.used
	b.mu.Unlock()
	return Stats{
		Subscribers:   subscribers,
		Retained:      retained,
		RetainedBytes: bytes,
		Attached:      b.stats.attached.Load(),
		Detached:      b.stats.detached.Load(),
		Broadcasts:    b.stats.broadcasts.Load(),
		Topical:       b.stats.topical.Load(),
		Presence:      b.stats.presence.Load(),
		Deliveries:    b.stats.deliveries.Load(),
		Replayed:      b.stats.replayed.Load(),
		CutOff:        b.stats.cutoff.Load(),
		Duplicates:    b.stats.duplicates.Load(),
		Gaps:          b.stats.gaps.Load(),
		Refused:       b.stats.refused.Load(),
		PublishWaits:  b.stats.waits.Load(),
		PublishWaited: time.Duration(b.stats.waited.Load()),
	}
}
