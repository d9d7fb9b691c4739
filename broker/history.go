package broker

import (
	"cmp"
	"container/heap"
	"hash/maphash"
	"slices"
	"sort"
	"time"
	"unsafe"
)

// limits bound what history retains.
type limits struct {
	perTopic int           // newest events kept per topic (broadcasts are one topic); 0 keeps none
	ttl      time.Duration // events older than this leave; 0: no age limit
	memory   int64         // bytes all retained events may take together (memoryOf); 0: no bound
}

// history keeps, per topic, the newest retained events for resume, GET /history and
// idempotent retries. Each topic has a floor: the newest of its events that left (or the
// start of history), so that a resume after an id at or above the floors of its topics is
// complete. Every eviction takes the oldest event of some topic: the count bound that of
// the topic it fills, the age and memory bounds the oldest retained anywhere, which the
// heap of topics by oldest event finds. A topic whose last event leaves is forgotten,
// and its floor goes into a fixed-size sketch. Not safe for concurrent use: the broker
// calls it under its lock.
type history struct {
	limits limits
	start  uint64 // ids at or below it are from before this history began
	used   int64  // bytes counted for what is retained
	held   int    // events retained

	topics map[string]*topicLog
	oldest topicHeap // topics by the id of their oldest event
	keys   map[keyRef]*Event
	gone   floorSketch
}

// topicLog is the retained events of one topic, oldest first, in evs[head:].
type topicLog struct {
	name  string
	evs   []*Event
	head  int
	floor uint64 // newest id of this topic no longer retained
	at    int    // index in history.oldest
}

// keyRef names an idempotency key: keys belong to the publisher that used them.
type keyRef struct{ publisher, key string }

func newHistory(l limits, start uint64) *history {
	return &history{
		limits: l,
		start:  start,
		topics: make(map[string]*topicLog),
		keys:   make(map[keyRef]*Event),
		gone:   newFloorSketch(),
	}
}

// What retaining costs beyond an event's own bytes, counted as Go lays it out: the Event,
// its pointer in its topic's slice (counted by capacity), a key's map entry, and a
// topic's log, map entry and heap slot. Map entries are estimated: a bucket slot holds
// the key, the value and a control byte, and buckets run up to 7/8 full.
const (
	eventSize = int64(unsafe.Sizeof(Event{}))
	slotSize  = int64(unsafe.Sizeof((*Event)(nil)))
	keyEntry  = (int64(unsafe.Sizeof(keyRef{})) + slotSize + 1) * 8 / 7
	topicSize = int64(unsafe.Sizeof(topicLog{})) + (int64(unsafe.Sizeof(""))+slotSize+1)*8/7 + slotSize
)

// memoryOf is what retaining ev costs besides its slot: the Event, its data, its wire
// bytes, its name unless shared, and its key's entry.
func memoryOf(ev *Event) int64 {
	n := eventSize + int64(cap(ev.Data)) + int64(cap(ev.wire))
	if ev.Name != NameMessage {
		n += int64(len(ev.Name))
	}
	if ev.Key != "" {
		n += keyEntry + int64(len(ev.Key)+len(ev.publisher))
	}
	return n
}

// add retains ev, then evicts what the bounds no longer allow. The event's Topic is
// replaced by its topic's own copy of the name, so that a topic's events share one.
func (h *history) add(ev *Event, now time.Time) {
	t := h.topics[ev.Topic]
	if t == nil {
		t = &topicLog{name: ev.Topic, floor: max(h.start, h.gone.floor(ev.Topic))}
		h.topics[t.name] = t
		heap.Push(&h.oldest, t)
		h.used += topicSize + int64(len(t.name))
	}
	ev.Topic = t.name
	h.used += t.push(ev) + memoryOf(ev)
	h.held++
	if ev.Key != "" {
		h.keys[keyRef{ev.publisher, ev.Key}] = ev
	}
	if len(t.evs)-t.head == 1 {
		heap.Fix(&h.oldest, t.at)
	}
	for h.limits.perTopic <= 0 || len(t.evs)-t.head > h.limits.perTopic {
		if !h.evict(t) {
			break
		}
	}
	for h.limits.memory > 0 && h.used > h.limits.memory && h.oldest.Len() > 0 {
		h.evict(h.oldest[0])
	}
	h.expire(now)
}

// expire evicts the events older than the TTL.
func (h *history) expire(now time.Time) {
	if h.limits.ttl <= 0 {
		return
	}
	cutoff := now.Add(-h.limits.ttl)
	for h.oldest.Len() > 0 {
		t := h.oldest[0]
		if !t.evs[t.head].Time.Before(cutoff) {
			return
		}
		h.evict(t)
	}
}

// nextExpiry returns when the oldest retained event expires; zero when none will.
func (h *history) nextExpiry() time.Time {
	if h.limits.ttl <= 0 || h.oldest.Len() == 0 {
		return time.Time{}
	}
	t := h.oldest[0]
	return t.evs[t.head].Time.Add(h.limits.ttl)
}

// evict drops the oldest event of t and raises its floor; a topic left empty is
// forgotten. It reports whether t still holds events.
func (h *history) evict(t *topicLog) bool {
	ev, freed := t.pop()
	t.floor = ev.ID
	h.used -= freed + memoryOf(ev)
	h.held--
	if ev.Key != "" {
		if k := (keyRef{ev.publisher, ev.Key}); h.keys[k] == ev {
			delete(h.keys, k)
		}
	}
	if t.head == len(t.evs) {
		h.gone.raise(t.name, t.floor)
		delete(h.topics, t.name)
		heap.Remove(&h.oldest, t.at)
		h.used -= topicSize + int64(len(t.name)) + slotSize*int64(cap(t.evs))
		return false
	}
	heap.Fix(&h.oldest, t.at)
	return true
}

// byKey returns the retained event that publisher published with key.
func (h *history) byKey(publisher, key string) (*Event, bool) {
	ev, ok := h.keys[keyRef{publisher, key}]
	return ev, ok
}

// floor returns the newest id of topic that is no longer retained: a replay of topic
// after an id below it is incomplete.
func (h *history) floor(topic string) uint64 {
	if t := h.topics[topic]; t != nil {
		return t.floor
	}
	return max(h.start, h.gone.floor(topic))
}

// after appends to dst up to limit (0: no limit) retained events of topic with an id
// above id, oldest first.
func (h *history) after(dst []*Event, topic string, id uint64, limit int) []*Event {
	t := h.topics[topic]
	if t == nil {
		return dst
	}
	evs := t.evs[t.head:]
	i := sort.Search(len(evs), func(i int) bool { return evs[i].ID > id })
	evs = evs[i:]
	if limit > 0 && len(evs) > limit {
		evs = evs[:limit]
	}
	return append(dst, evs...)
}

// merged returns the retained events of the given topics and of broadcasts with an id
// above id, in id order.
func (h *history) merged(topics []string, id uint64) []*Event {
	evs := h.after(nil, "", id, 0)
	for _, t := range topics {
		if t != "" {
			evs = h.after(evs, t, id, 0)
		}
	}
	if len(topics) > 0 {
		slices.SortFunc(evs, func(a, b *Event) int { return cmp.Compare(a.ID, b.ID) })
	}
	return evs
}

// floorOf returns the highest floor among topics and broadcasts.
func (h *history) floorOf(topics []string) uint64 {
	f := h.floor("")
	for _, t := range topics {
		f = max(f, h.floor(t))
	}
	return f
}

// push appends ev and returns the bytes its slice grew by.
func (t *topicLog) push(ev *Event) int64 {
	before := cap(t.evs)
	if len(t.evs) == cap(t.evs) && t.head >= len(t.evs)/2 && t.head > 0 {
		// Slide the live part to the front rather than grow: the slice stays within
		// twice what the topic holds.
		n := copy(t.evs, t.evs[t.head:])
		clear(t.evs[n:])
		t.evs, t.head = t.evs[:n], 0
	}
	t.evs = append(t.evs, ev)
	return slotSize * int64(cap(t.evs)-before)
}

// pop removes the oldest event and returns it with the bytes its slice shrank by.
func (t *topicLog) pop() (*Event, int64) {
	ev := t.evs[t.head]
	t.evs[t.head] = nil
	t.head++
	before := cap(t.evs)
	if live := len(t.evs) - t.head; cap(t.evs) > 64 && live < cap(t.evs)/4 {
		t.evs = append(make([]*Event, 0, 2*live), t.evs[t.head:]...)
		t.head = 0
	}
	return ev, slotSize * int64(before-cap(t.evs))
}

// topicHeap orders topics by the id of their oldest retained event.
type topicHeap []*topicLog

func (q topicHeap) Len() int { return len(q) }
func (q topicHeap) Less(i, j int) bool {
	a, b := q[i], q[j]
	return a.head < len(a.evs) && (b.head == len(b.evs) || a.evs[a.head].ID < b.evs[b.head].ID)
}
func (q topicHeap) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].at, q[j].at = i, j
}
func (q *topicHeap) Push(x any) {
	t := x.(*topicLog)
	t.at = len(*q)
	*q = append(*q, t)
}
func (q *topicHeap) Pop() any {
	old := *q
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return t
}

// floorSketch remembers the floors of forgotten topics in a fixed space: each topic
// raises one cell in each of two rows, and its floor is the lower of its two cells. A
// topic's estimate is never below its true floor, so no gap goes unreported; it is
// above only when both cells were raised by later-evicted topics, and then a resume
// reports a gap it could not vouch for.
type floorSketch struct {
	seeds [2]maphash.Seed
	cells [2][sketchCells]uint64
}

const sketchCells = 2048

func newFloorSketch() floorSketch {
	return floorSketch{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
}

func (f *floorSketch) raise(topic string, id uint64) {
	for r := range f.cells {
		c := &f.cells[r][maphash.String(f.seeds[r], topic)%sketchCells]
		*c = max(*c, id)
	}
}

func (f *floorSketch) floor(topic string) uint64 {
	a := f.cells[0][maphash.String(f.seeds[0], topic)%sketchCells]
	b := f.cells[1][maphash.String(f.seeds[1], topic)%sketchCells]
	return min(a, b)
}
