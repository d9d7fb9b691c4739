// Package ssetest reads text/event-stream as a browser does, for tests.
package ssetest

import (
	"bufio"
	"bytes"
	"io"
	"strings"
)

// Event is one dispatched event as a browser's EventSource would see it.
type Event struct {
	ID    string
	Type  string
	Data  string
	Retry string
}

// Reader parses text/event-stream the way the HTML standard's EventSource does, so
// tests see exactly what a browser would. Comments are counted, not returned.
type Reader struct {
	r        *bufio.Reader
	lastID   string
	retry    string
	comments int // comments read so far (heartbeats)
}

// NewReader reads events from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReader(r)} }

// Line reads one line ended by CRLF, LF or CR.
func (p *Reader) Line() (string, error) {
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

// Next returns the next dispatched event.
func (p *Reader) Next() (Event, error) {
	var data bytes.Buffer
	var typ string
	for {
		line, err := p.Line()
		if err != nil {
			return Event{}, err
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
			return Event{ID: p.lastID, Type: typ, Data: d, Retry: p.retry}, nil
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

// Comments reports how many comment lines were read so far.
func (p *Reader) Comments() int { return p.comments }
