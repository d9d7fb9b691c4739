package handlers

import (
	"strconv"

	"github.com/crierhq/crier/broker"
)

// EncodeEvent renders ev as one Server-Sent Events block:
//
//	id: <id>
//	event: <name>
//	data: <line>        (one per line of the data; CR, LF and CRLF all end a line)
//	<blank line>
//
// Nothing in the name or data can forge another field or event: line breaks and NUL are
// dropped from the name, and every data line is prefixed with "data: ". It is the
// broker's Encoder, called once per event.
func EncodeEvent(ev *broker.Event) []byte {
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

// retryField is the stream's opening: the reconnection delay in milliseconds.
func retryField(ms int64) []byte {
	b := append([]byte("retry: "), strconv.FormatInt(ms, 10)...)
	return append(b, "\n\n"...)
}

// heartbeat is the comment written to idle streams.
var heartbeat = []byte(": heartbeat\n\n")
