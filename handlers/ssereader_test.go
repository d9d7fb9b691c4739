package handlers_test

import (
	"bufio"
	"bytes"
	"io"
	"strings"
)

// sseEvent is one dispatched event as a browser's EventSource would see it.
type sseEvent struct {
	ID    string
	Type  string
	Data  string
	Retry string
}

// sseReader parses text/event-stream the way the HTML standard's EventSource does, so
// tests see exactly what a browser would. Comments are counted, not returned.
type sseReader struct {
	r        *bufio.Reader
	lastID   string
	retry    string
	comments int
}

func newSSEReader(r io.Reader) *sseReader { return &sseReader{r: bufio.NewReader(r)} }

// line reads one line ended by CRLF, LF or CR.
func (p *sseReader) line() (string, error) {
	var b strings.Builder
	for {
		c, err := p.r.ReadByte()
		if err != nil {
			return b.String(), err
		}
		switch c {
		case '\n':
			return b.String(), nil
		case '\r':
			if next, err := p.r.Peek(1); err == nil && next[0] == '\n' {
				p.r.ReadByte()
			}
			return b.String(), nil
		}
		b.WriteByte(c)
	}
}

// next returns the next dispatched event.
func (p *sseReader) next() (sseEvent, error) {
	var data bytes.Buffer
	var typ string
	for {
		line, err := p.line()
		if err != nil {
			return sseEvent{}, err
		}
		if line == "" {
			if data.Len() == 0 {
				typ = ""
				continue
			}
			d := strings.TrimSuffix(data.String(), "\n")
			if typ == "" {
				typ = "message"
			}
			return sseEvent{ID: p.lastID, Type: typ, Data: d, Retry: p.retry}, nil
		}
		if line[0] == ':' {
			p.comments++
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
		case "id":
			if !strings.ContainsRune(value, 0) {
				p.lastID = value
			}
		case "retry":
			p.retry = value
		}
	}
}
