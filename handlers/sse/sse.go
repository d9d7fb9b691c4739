// Package sse is crier's Server-Sent Events wire format: the headers every stream
// carries, its opening, its heartbeat comment and the encoding of an event. Both ways of
// writing a stream (a handler goroutine, or the hub) use it.
package sse

import (
	"net/http"
	"strconv"

	"github.com/crierhq/crier/broker"
)

// Encode renders ev as one Server-Sent Events block:
//
//	id: <id>
//	event: <name>
//	data: <line>        (one per line of the data; CR, LF and CRLF all end a line)
//	<blank line>
//
// Nothing in the name or data can forge another field or event: line breaks and NUL are
// dropped from the name, and every data line is prefixed with "data: ". It is the
// broker's Encoder, called once per event.
func Encode(ev *broker.Event) []byte {
	b := make([]byte, 0, 32+len(ev.Name)+len(ev.Data)+8*(1+countBreaks(ev.Data)))
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, ev.ID, 10)
	b = append(b, "\nevent: "...)
	name := ev.Name
	if name == "" {
		name = broker.NameMessage
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c != '\r' && c != '\n' && c != 0 {
			b = append(b, c)
		}
	}
	b = append(b, '\n')
	b = appendData(b, ev.Data)
	return append(b, '\n')
}

// appendData writes data as "data: " lines, splitting on CR, LF and CRLF.
func appendData(b, data []byte) []byte {
	b = append(b, "data: "...)
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\r':
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
			}
			b = append(b, "\ndata: "...)
		case '\n':
			b = append(b, "\ndata: "...)
		default:
			b = append(b, c)
		}
	}
	return append(b, '\n')
}

func countBreaks(data []byte) int {
	n := 0
	for _, c := range data {
		if c == '\n' || c == '\r' {
			n++
		}
	}
	return n
}

// AppendEvent appends ev's encoded bytes to b. On a tagged stream an event published to a
// topic is preceded by a "topic:" line naming it: a client that shares one stream among
// several consumers (crier.js, for the tabs of a browser) routes each event by it.
// EventSource ignores a field it does not know, so the line changes nothing for it. The
// encoded bytes stay shared; only the line is written per stream.
func AppendEvent(b []byte, ev *broker.Event, tagged bool) []byte {
	return append(AppendTag(b, ev, tagged), ev.Wire()...)
}

// AppendTag appends what AppendEvent writes before ev's shared bytes: on a tagged stream,
// the "topic:" line of an event published to a topic; nothing otherwise.
func AppendTag(b []byte, ev *broker.Event, tagged bool) []byte {
	if tagged && ev.Topic != "" {
		b = append(b, "topic: "...)
		for i := 0; i < len(ev.Topic); i++ {
			if c := ev.Topic[i]; !lineBreak(c) {
				b = append(b, c)
			}
		}
		b = append(b, '\n')
	}
	return b
}

// EventLen is the length of what AppendEvent appends.
func EventLen(ev *broker.Event, tagged bool) int {
	n := len(ev.Wire())
	if tagged && ev.Topic != "" {
		n += len("topic: \n")
		for i := 0; i < len(ev.Topic); i++ {
			if !lineBreak(ev.Topic[i]) {
				n++
			}
		}
	}
	return n
}

// lineBreak reports whether c would end a field: no name or topic may carry one.
func lineBreak(c byte) bool { return c == '\r' || c == '\n' || c == 0 }

// Retry is a stream's opening: the reconnection delay in milliseconds.
func Retry(ms int64) []byte {
	b := append([]byte("retry: "), strconv.FormatInt(ms, 10)...)
	return append(b, "\n\n"...)
}

// Heartbeat is the comment written to idle streams, so that proxies and clients see the
// connection alive.
var Heartbeat = []byte(": heartbeat\n\n")

// SetHeaders sets the headers every stream carries, whichever way it is written.
func SetHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
}
