package broker

import (
	"encoding/json"
	"strconv"
	"time"
)

// presenceData renders a presence event's JSON payload, fields in the contract's order.
func presenceData(name, subscriber string, subscribers int, t time.Time) []byte {
	msg := "new user connected"
	if name == NameUserLeft {
		msg = "user disconnected"
	}
	b := make([]byte, 0, 128)
	b = append(b, `{"message":`...)
	b = strconv.AppendQuote(b, msg)
	b = append(b, `,"subscriber":`...)
	b = strconv.AppendQuote(b, subscriber)
	b = append(b, `,"subscribers":`...)
	b = strconv.AppendInt(b, int64(subscribers), 10)
	b = append(b, `,"time":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339)
	return append(b, `"}`...)
}

// The messages of the "missed" notice: a resume that history no longer covers, and a
// gap in a cluster's log found while streams were open.
const (
	resumeMessage = "some events were missed: history no longer covers lastEventId"
	lostMessage   = "some events were missed: the cluster's log lost entries after lastEventId"
)

// missedData renders the payload of a "missed" notice about the events after lastID.
func missedData(message, lastID string) []byte {
	if len(lastID) > 64 {
		lastID = lastID[:64]
	}
	quoted, _ := json.Marshal(lastID) // a string always marshals
	b := append([]byte(`{"message":`), strconv.Quote(message)...)
	b = append(b, `,"lastEventId":`...)
	b = append(b, quoted...)
	return append(b, '}')
}

// PresenceEvent makes the new_user (name NameNewUser) or user_left (NameUserLeft) event
// that a Bus read from its log: subscriber attached or detached at t, leaving subscribers
// open streams across the cluster.
func PresenceEvent(id uint64, t time.Time, name, subscriber string, subscribers int) *Event {
	return &Event{ID: id, Name: name, Time: t, Data: presenceData(name, subscriber, subscribers, t), who: subscriber}
}
