package main

import (
	"bytes"
	"strconv"
)

// loadEvent is the event name the tool publishes; streams ignore every other event but
// presence events.
const loadEvent = "load"

// payload is what a published event carries in its data, so that receivers can measure
// latency and find lost, duplicated or reordered events without a shared clock other
// than the machine's.
type payload struct {
	gen int64 // measurement phase: events of an earlier phase arriving late are ignored
	pub int64 // publisher index: sequence numbers are per publisher
	seq int64 // 0, 1, 2 ... for each successful publish of a publisher
	ts  int64 // wall clock at send, Unix nanoseconds
}

// appendData appends the compact JSON data of p, padded with "x" to size bytes when
// size allows: {"g":1,"p":0,"seq":42,"ts":1732000000000000000,"pad":"xxx"}.
func appendData(dst []byte, p payload, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"g":`...)
	dst = strconv.AppendInt(dst, p.gen, 10)
	dst = append(dst, `,"p":`...)
	dst = strconv.AppendInt(dst, p.pub, 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, p.seq, 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, p.ts, 10)
	const padField = `,"pad":""}`
	if pad := size - (len(dst) - start) - len(padField); pad > 0 {
		dst = append(dst, `,"pad":"`...)
		for range pad {
			dst = append(dst, 'x')
		}
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// parseData reads a payload back from event data. It looks the keys up rather than
// assuming an order, since the server may re-encode the JSON.
func parseData(data []byte) (payload, bool) {
	var p payload
	var ok1, ok2, ok3, ok4 bool
	p.gen, ok1 = jsonInt(data, `"g":`)
	p.pub, ok2 = jsonInt(data, `"p":`)
	p.seq, ok3 = jsonInt(data, `"seq":`)
	p.ts, ok4 = jsonInt(data, `"ts":`)
	return p, ok1 && ok2 && ok3 && ok4
}

// jsonInt returns the non-negative integer after key (which includes the quotes and the
// colon) in a flat JSON object whose only string value is the padding.
func jsonInt(data []byte, key string) (int64, bool) {
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(data[i+len(key):], " \t\r\n")
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	return parseDigits(rest[:j])
}
