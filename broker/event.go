package broker

import (
	"bytes"
	"strconv"
	"time"
)

// Names of the events the broker itself emits. Publishers may not use them.
const (
	NameMessage  = "message"   // the event type when a publisher names none
	NameNewUser  = "new_user"  // a subscriber attached
	NameUserLeft = "user_left" // a subscriber detached
	NameMissed   = "missed"    // a resumed stream could not be replayed completely
	NameJoin     = "join"      // a user's first stream entered a room
	NameLeave    = "leave"     // a user's last stream left a room
)

// Reserved reports whether name is one the broker emits itself.
func Reserved(name string) bool {
	switch name {
	case NameNewUser, NameUserLeft, NameMissed, NameJoin, NameLeave:
		return true
	}
	return false
}

// announcement reports whether name is that of a presence event (global or of a room):
// those tell who is here now, so they are not retained for resume.
func announcement(name string) bool {
	switch name {
	case NameNewUser, NameUserLeft, NameJoin, NameLeave:
		return true
	}
	return false
}

// Message is what a publisher hands to Publish.
type Message struct {
	Topic string // "" broadcasts to every subscriber
	Name  string // event type; "" means NameMessage
	Data  []byte // payload, sent verbatim (split into data lines on the wire)
	Text  bool   // Data is plain text rather than a JSON value
	Key   string // idempotency key; "" for none
	// Publisher is who published: idempotency keys are its own, and another publisher's
	// key never matches.
	Publisher string
}

// Event is one event on its way to subscribers. An Event is immutable once the broker
// hands it out: every subscriber shares the same *Event and the same wire bytes.
type Event struct {
	ID    uint64
	Topic string
	Name  string
	Data  []byte
	Text  bool      // Data is plain text rather than a JSON value
	Key   string    // idempotency key of the publish that made it, if any
	Time  time.Time // when the broker accepted it

	retained  bool   // kept in history and replayed on resume (presence events are not)
	who       string // the subscriber a presence event is about
	mark      uint64 // the RoomBus mark its Bus's log reached here (Mark, WithMark); 0: none
	publisher string // Message.Publisher, which the key belongs to
	wire      []byte // the encoded event, made once by Options.Encode
}

// Same reports whether m would publish e again: same topic, name and data. The name ""
// is NameMessage.
func (e *Event) Same(m Message) bool {
	name := m.Name
	if name == "" {
		name = NameMessage
	}
	return e.Topic == m.Topic && e.Name == name && e.Text == m.Text && bytes.Equal(e.Data, m.Data)
}

// Mark makes the event by which a Bus tells the broker, at id id in its log, that the
// log has reached mark, a value of its RoomBus.Occupy. It reaches no stream.
func Mark(id, mark uint64) *Event { return &Event{ID: id, mark: mark} }

// WithMark makes e, a join or leave read from a Bus's log, carry mark as well, as Mark
// does: the log reaches mark at e, so e is already newer than that Occupy. It returns e;
// call it before handing e to the broker.
func (e *Event) WithMark(mark uint64) *Event {
	e.mark = mark
	return e
}

// markOnly reports whether e is only a mark (see Mark), for no stream.
func (e *Event) markOnly() bool { return e.mark > 0 && e.Name == "" }

// Wire returns the event's encoded bytes, shared by every subscriber; do not modify them.
func (e *Event) Wire() []byte { return e.wire }

// Retained reports whether the event is kept in history for resume.
func (e *Event) Retained() bool { return e.retained }

// FormatID renders an event id as it appears on the wire and in publish receipts.
func FormatID(id uint64) string { return strconv.FormatUint(id, 10) }

// ParseID reads an id written by FormatID.
func ParseID(s string) (uint64, bool) {
	id, err := strconv.ParseUint(s, 10, 64)
	return id, err == nil
}

// Encoder turns an event into its wire bytes. It is called once per event.
type Encoder func(*Event) []byte
