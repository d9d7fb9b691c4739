package main

import (
	"bytes"
	"math"
)

// What sseParser.next found.
const (
	kindEvent   = iota // a dispatched event: see name, data, id
	kindComment        // a comment line (":" ...): crier's heartbeat
	kindRetry          // a valid retry field: see retry
)

// sseParser reads Server-Sent Events from a body, following the parsing rules of the
// HTML standard's event stream interpretation, without allocating once its buffers have
// grown to the size of the events.
type sseParser struct {
	r *bodyReader

	// The event being built.
	building []byte // event type buffer
	data     []byte
	ndata    int // data lines seen: an event with none is not dispatched

	// The last dispatched event, valid until the next call to next.
	name  []byte // "message" when the stream named none
	out   []byte
	id    []byte // the last event ID buffer, which persists across events
	retry int64  // the last valid retry value, in milliseconds
}

var messageName = []byte("message")

// next reads until an event is dispatched, a comment is seen or a retry field is set.
func (p *sseParser) next() (int, error) {
	for {
		line, err := p.r.line()
		if err != nil {
			return 0, err
		}
		if len(line) == 0 {
			if p.ndata == 0 {
				p.building = p.building[:0]
				continue
			}
			if len(p.building) == 0 {
				p.name = append(p.name[:0], messageName...)
			} else {
				p.name = append(p.name[:0], p.building...)
			}
			p.out, p.data = p.data, p.out[:0]
			p.building, p.ndata = p.building[:0], 0
			return kindEvent, nil
		}
		if line[0] == ':' {
			return kindComment, nil
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			p.building = append(p.building[:0], value...)
		case "data":
			if p.ndata > 0 {
				p.data = append(p.data, '\n')
			}
			p.data = append(p.data, value...)
			p.ndata++
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				p.id = append(p.id[:0], value...)
			}
		case "retry":
			if n, ok := parseDigits(value); ok {
				p.retry = n
				return kindRetry, nil
			}
		}
	}
}

// parseDigits parses a non-empty run of ASCII digits that fits an int64.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}
