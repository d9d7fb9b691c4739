package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

var errBadResponse = errors.New("loadtest: malformed HTTP response")

// respHeader is what the tool needs from a response's status line and header.
type respHeader struct {
	status        int
	contentLength int64 // -1 when absent
	chunked       bool
	close         bool   // Connection: close
	contentType   string // only for the stream's check
	retryAfter    string
}

// bodyMode returns the framing of the body that follows the header.
func (h *respHeader) bodyMode() (int, int64) {
	switch {
	case h.chunked:
		return modeChunked, 0
	case h.contentLength >= 0:
		return modeLength, h.contentLength
	default:
		return modeRaw, 0
	}
}

// readHeader reads a status line and header fields up to the blank line. 1xx interim
// responses are skipped.
func readHeader(b *bodyReader) (respHeader, error) {
	for {
		h, err := readOneHeader(b)
		if err != nil || h.status >= 200 {
			return h, err
		}
	}
}

func readOneHeader(b *bodyReader) (respHeader, error) {
	h := respHeader{contentLength: -1}
	line, err := b.headerLine()
	if err != nil {
		return h, err
	}
	// "HTTP/1.1 200 OK"
	if !bytes.HasPrefix(line, []byte("HTTP/1.")) || len(line) < 12 || line[8] != ' ' {
		return h, fmt.Errorf("%w: status line %q", errBadResponse, truncate(line))
	}
	h.status, err = strconv.Atoi(string(line[9:12]))
	if err != nil || h.status < 100 {
		return h, fmt.Errorf("%w: status line %q", errBadResponse, truncate(line))
	}
	for {
		line, err := b.headerLine()
		if err != nil {
			return h, err
		}
		if len(line) == 0 {
			return h, nil
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			return h, fmt.Errorf("%w: header line %q", errBadResponse, truncate(line))
		}
		name, value := line[:i], bytes.TrimSpace(line[i+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return h, fmt.Errorf("%w: Content-Length %q", errBadResponse, truncate(value))
			}
			h.contentLength = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			h.chunked = bytes.EqualFold(lastToken(value), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			h.close = containsToken(value, "close")
		case bytes.EqualFold(name, []byte("Content-Type")):
			h.contentType = string(value)
		case bytes.EqualFold(name, []byte("Retry-After")):
			h.retryAfter = string(value)
		}
	}
}

// lastToken returns the last comma-separated token of a header value.
func lastToken(v []byte) []byte {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return bytes.TrimSpace(v)
}

func containsToken(v []byte, token string) bool {
	for _, t := range bytes.Split(v, []byte{','}) {
		if bytes.EqualFold(bytes.TrimSpace(t), []byte(token)) {
			return true
		}
	}
	return false
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}
