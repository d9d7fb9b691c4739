// Package sseconn is a Server-Sent Events client on a raw TCP connection, for the
// reliability tests: it owns its socket, so a test can end a stream with a clean close
// (FIN) or an abrupt reset (RST, SO_LINGER 0), and it costs little enough that one
// process can hold thousands of streams.
package sseconn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Event is one dispatched event.
type Event struct {
	ID   string
	Name string // "message" when the stream gave no event: line
	Data string // data lines joined by "\n"
}

// Stream is one GET /events on its own connection. Not safe for concurrent use, except
// that Reset and Close may be called from another goroutine to end a blocked Next.
type Stream struct {
	Resp  *http.Response // status and headers; Body is read by Next
	Retry time.Duration  // the last retry: field Next read; 0 before one
	conn  net.Conn
	r     *bufio.Reader
}

// Open connects to addr (host:port), sends GET target (such as "/events?topic=a") with
// header, and reads the response head. A status other than 200 is not an error: the
// caller checks Resp.StatusCode, and must Close the stream either way.
func Open(ctx context.Context, addr, target string, header http.Header) (*Stream, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n", target, addr)
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		conn.Close()
		return nil, err
	}
	r := bufio.NewReaderSize(conn, 4096)
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+target, nil)
	resp, err := http.ReadResponse(r, req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	// Read the body through a bufio.Reader again: it is chunked, and decoding line by
	// line straight from it is cheap.
	return &Stream{Resp: resp, conn: conn, r: bufio.NewReaderSize(resp.Body, 4096)}, nil
}

// SetReadDeadline bounds the next reads; the zero time removes the bound.
func (s *Stream) SetReadDeadline(t time.Time) { _ = s.conn.SetReadDeadline(t) }

// Next returns the next event, skipping comments and retry fields (the last one read
// is kept in Retry). io.EOF means the server ended the stream cleanly.
func (s *Stream) Next() (Event, error) {
	var ev Event
	var data []string
	seen := false
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" && !seen {
				return Event{}, io.EOF
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Event{}, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if !seen {
				continue
			}
			if ev.Name == "" {
				ev.Name = "message"
			}
			ev.Data = strings.Join(data, "\n")
			return ev, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID, seen = value, true
		case "event":
			ev.Name, seen = value, true
		case "data":
			data, seen = append(data, value), true
		case "retry":
			if ms, err := strconv.ParseInt(value, 10, 64); err == nil {
				s.Retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

// Close ends the stream with a clean close: the server reads a FIN.
func (s *Stream) Close() error { return s.conn.Close() }

// Reset ends the stream abruptly: SO_LINGER 0 makes the close send a RST, as a client
// that crashed or lost its network would look to a server that writes next.
func (s *Stream) Reset() error {
	if tc, ok := s.conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return s.conn.Close()
}

// ErrStatus is returned by Expect200 for a refused stream.
var ErrStatus = errors.New("sseconn: stream refused")

// Expect200 closes the stream and returns an error naming the status unless it is 200.
func (s *Stream) Expect200() error {
	if s.Resp.StatusCode == http.StatusOK {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(s.Resp.Body, 512))
	s.Close()
	return fmt.Errorf("%w: %s %s", ErrStatus, s.Resp.Status, strings.TrimSpace(string(body)))
}
