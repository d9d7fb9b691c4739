package broker

import "sort"

// history keeps the most recent retained events, oldest first, for resume and for
// idempotent retries. Not safe for concurrent use: the broker calls it under its lock.
type history struct {
	ring  []*Event // circular, len(ring) == capacity
	start int      // index of the oldest event
	n     int      // events held
	keys  map[string]*Event
	// floor is the highest id that may have been missed by a replay: ids at or below it
	// are no longer retained (evicted, or from before this broker started). A resume from
	// an id >= floor is complete.
	floor uint64
}

func newHistory(capacity int, floor uint64) *history {
	return &history{ring: make([]*Event, capacity), keys: make(map[string]*Event), floor: floor}
}

// add retains ev, evicting the oldest event when full. With capacity 0 nothing is kept,
// and the floor follows the newest id.
func (h *history) add(ev *Event) {
	if len(h.ring) == 0 {
		h.floor = ev.ID
		return
	}
	if h.n == len(h.ring) {
		old := h.ring[h.start]
		h.forget(old)
		h.floor = old.ID
		h.ring[h.start] = nil
		h.start = (h.start + 1) % len(h.ring)
		h.n--
	}
	h.ring[(h.start+h.n)%len(h.ring)] = ev
	h.n++
	if ev.Key != "" {
		h.keys[ev.Key] = ev
	}
}

func (h *history) forget(ev *Event) {
	if ev.Key != "" && h.keys[ev.Key] == ev {
		delete(h.keys, ev.Key)
	}
}

// byKey returns the retained event published with idempotency key k.
func (h *history) byKey(k string) (*Event, bool) {
	ev, ok := h.keys[k]
	return ev, ok
}

func (h *history) at(i int) *Event { return h.ring[(h.start+i)%len(h.ring)] }

// after appends to dst the retained events with an id above id that match, oldest first.
func (h *history) after(dst []*Event, id uint64, match func(*Event) bool) []*Event {
	i := sort.Search(h.n, func(i int) bool { return h.at(i).ID > id })
	for ; i < h.n; i++ {
		if ev := h.at(i); match(ev) {
			dst = append(dst, ev)
		}
	}
	return dst
}

// covers reports whether every retained-kind event after id is still held.
func (h *history) covers(id uint64) bool { return id >= h.floor }

// newest returns the id of the newest retained event, or 0.
func (h *history) newest() uint64 {
	if h.n == 0 {
		return 0
	}
	return h.at(h.n - 1).ID
}
