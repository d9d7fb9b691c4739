package main

import (
	"bytes"
	"errors"
	"io"
	"time"
)

// Body framing of an HTTP/1.1 response, as bodyReader decodes it.
const (
	modeRaw     = iota // status and header lines, or a body that ends when the connection does
	modeLength         // a body of Content-Length bytes
	modeChunked        // Transfer-Encoding: chunked
)

// States of the chunked decoder.
const (
	chunkSize    = iota // expecting "HEX[;ext]\r\n"
	chunkData           // inside a chunk's data
	chunkDataEnd        // expecting the CRLF after a chunk's data
	chunkTrailer        // after the last chunk: trailer lines until an empty one
)

// maxChunkLine bounds a chunk-size or trailer line; a longer one is a protocol error.
const maxChunkLine = 1024

var (
	errBadChunk    = errors.New("loadtest: malformed chunked encoding")
	errLineTooLong = errors.New("loadtest: line longer than the read buffer may grow")

	// errWouldBlock is returned by a non-blocking source with nothing to read now. It
	// passes through bodyReader and sseParser, whose state is kept, so that parsing
	// resumes where it stopped when more bytes arrive.
	errWouldBlock = errors.New("loadtest: would block")
)

// bodyReader reads one HTTP/1.1 connection through a single buffer: first the status and
// header lines, then the body's lines, with chunked framing removed in place. A stream
// therefore costs one small buffer whatever its framing, which is what lets one process
// hold ~19,000 of them.
//
// The buffer holds, in order: consumed bytes, decoded bytes not yet consumed
// (buf[start:end]), a gap left by removed framing, and raw bytes not yet decoded
// (buf[rp:rend]). A bodyReader is owned by one goroutine.
type bodyReader struct {
	src io.Reader
	buf []byte
	max int // the buffer doubles up to this size when one line does not fit

	start, end int // decoded, unconsumed
	rp, rend   int // raw, undecoded

	mode   int
	left   int64 // modeLength: body bytes to come; modeChunked: bytes left in this chunk
	cstate int
	done   bool  // the body is complete: no more decoded bytes will come
	srcErr error // the error src returned, reported once the decoded bytes run out
	skipLF bool  // the last line ended with CR: an LF starting the next one belongs to it

	// readAt is the wall clock, in Unix nanoseconds, right after the last read from src
	// that returned data: the receive time of everything that read carried.
	readAt int64
}

func newBodyReader(src io.Reader, size, max int) *bodyReader {
	b := &bodyReader{}
	b.reset(src, size, max)
	return b
}

func (b *bodyReader) reset(src io.Reader, size, max int) {
	if cap(b.buf) >= size {
		b.buf = b.buf[:size]
	} else {
		b.buf = make([]byte, size)
	}
	*b = bodyReader{src: src, buf: b.buf, max: max}
}

// setBody switches from header lines to the body, framed as mode (length is the
// Content-Length for modeLength). Bytes already read past the header are decoded again.
func (b *bodyReader) setBody(mode int, length int64) error {
	// In raw mode everything read so far sits in buf[start:end]; make it raw again.
	b.rp, b.rend, b.end = b.start, b.end, b.start
	b.mode, b.left, b.cstate, b.done, b.skipLF = mode, length, chunkSize, false, false
	if mode == modeLength && length == 0 {
		b.done = true
	}
	return b.decode()
}

// nextResponse returns to header lines after a complete body, for the next response on
// a keep-alive connection. Bytes of that response already read are kept.
func (b *bodyReader) nextResponse() error {
	b.start = b.end
	b.mode, b.done, b.skipLF = modeRaw, false, false
	return b.decode()
}

// move appends n raw bytes to the decoded ones.
func (b *bodyReader) move(n int) {
	if b.end != b.rp {
		copy(b.buf[b.end:], b.buf[b.rp:b.rp+n])
	}
	b.end += n
	b.rp += n
}

// decode turns as many raw bytes as it can into decoded ones.
func (b *bodyReader) decode() error {
	for b.rp < b.rend && !b.done {
		avail := b.rend - b.rp
		switch b.mode {
		case modeRaw:
			b.move(avail)
		case modeLength:
			n := int(min(int64(avail), b.left))
			b.move(n)
			b.left -= int64(n)
			b.done = b.left == 0
		case modeChunked:
			progress, err := b.decodeChunked()
			if err != nil || !progress {
				return err
			}
		}
	}
	return nil
}

// decodeChunked makes one step of the chunked decoder; it makes none when the raw bytes
// end inside a framing line.
func (b *bodyReader) decodeChunked() (progress bool, err error) {
	raw := b.buf[b.rp:b.rend]
	switch b.cstate {
	case chunkSize, chunkTrailer:
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			if len(raw) > maxChunkLine {
				return false, errBadChunk
			}
			return false, nil
		}
		line := bytes.TrimSuffix(raw[:i], []byte{'\r'})
		b.rp += i + 1
		if b.cstate == chunkTrailer {
			b.done = len(line) == 0
			return true, nil
		}
		size, err := parseChunkSize(line)
		if err != nil {
			return false, err
		}
		if size == 0 {
			b.cstate = chunkTrailer
		} else {
			b.left, b.cstate = size, chunkData
		}
	case chunkData:
		n := int(min(int64(len(raw)), b.left))
		b.move(n)
		b.left -= int64(n)
		if b.left == 0 {
			b.cstate = chunkDataEnd
		}
	case chunkDataEnd:
		switch {
		case raw[0] == '\n':
			b.rp++
		case raw[0] == '\r' && len(raw) >= 2 && raw[1] == '\n':
			b.rp += 2
		case raw[0] == '\r' && len(raw) == 1:
			return false, nil
		default:
			return false, errBadChunk
		}
		b.cstate = chunkSize
	}
	return true, nil
}

// parseChunkSize parses the hexadecimal size of a chunk-size line, ignoring extensions.
func parseChunkSize(line []byte) (int64, error) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, errBadChunk
	}
	var n int64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, errBadChunk
		}
		n = n<<4 | int64(c)
	}
	return n, nil
}

// fill reads once from src, after making room, and decodes what came.
func (b *bodyReader) fill() error {
	if b.start > 0 || b.end < b.rp {
		n := copy(b.buf, b.buf[b.start:b.end])
		m := copy(b.buf[n:], b.buf[b.rp:b.rend])
		b.start, b.end, b.rp, b.rend = 0, n, n, n+m
	}
	if b.rend == len(b.buf) {
		if len(b.buf) >= b.max {
			return errLineTooLong
		}
		nb := make([]byte, min(2*len(b.buf), b.max))
		copy(nb, b.buf[:b.rend])
		b.buf = nb
	}
	n, err := b.src.Read(b.buf[b.rend:])
	if n > 0 {
		b.rend += n
		b.readAt = time.Now().UnixNano()
	}
	switch {
	case err == errWouldBlock && n == 0:
		return errWouldBlock // not sticky: the caller reads again once the source is ready
	case err != nil && err != errWouldBlock:
		b.srcErr = err
	}
	return b.decode()
}

// eofError is the error for a source that ended: a clean io.EOF only where the framing
// says the body may end there.
func (b *bodyReader) eofError() error {
	if b.srcErr == io.EOF && b.mode != modeRaw {
		return io.ErrUnexpectedEOF
	}
	return b.srcErr
}

// line returns the next line without its terminator (LF, CR or CRLF). The slice is valid
// until the next call. At the end of the body it returns io.EOF; an unterminated last
// line is dropped, as the SSE spec drops an unterminated last event.
func (b *bodyReader) line() ([]byte, error) {
	for {
		if b.skipLF && b.start < b.end {
			if b.buf[b.start] == '\n' {
				b.start++
			}
			b.skipLF = false
		}
		seg := b.buf[b.start:b.end]
		if i := indexEOL(seg); i >= 0 {
			b.start += i + 1
			if seg[i] == '\r' {
				if i+1 < len(seg) {
					if seg[i+1] == '\n' {
						b.start++
					}
				} else {
					b.skipLF = true
				}
			}
			return seg[:i], nil
		}
		if b.done {
			return nil, io.EOF
		}
		if b.srcErr != nil {
			return nil, b.eofError()
		}
		if err := b.fill(); err != nil {
			return nil, err
		}
	}
}

// headerLine returns the next HTTP header line: terminated by LF, with a CR before it
// removed. HTTP needs this stricter rule: with SSE's, a CRLF split across two reads
// would leave its LF to be taken for the first byte of the body.
func (b *bodyReader) headerLine() ([]byte, error) {
	for {
		seg := b.buf[b.start:b.end]
		if i := bytes.IndexByte(seg, '\n'); i >= 0 {
			b.start += i + 1
			return bytes.TrimSuffix(seg[:i], []byte{'\r'}), nil
		}
		if b.srcErr != nil {
			return nil, b.srcErr
		}
		if err := b.fill(); err != nil {
			return nil, err
		}
	}
}

// indexEOL returns the index of the first CR or LF in s, or -1.
func indexEOL(s []byte) int {
	i := bytes.IndexByte(s, '\n')
	head := s
	if i >= 0 {
		head = s[:i]
	}
	if j := bytes.IndexByte(head, '\r'); j >= 0 {
		return j
	}
	return i
}

// readAll reads the rest of the body and returns it; the slice is valid until the next
// call on b.
func (b *bodyReader) readAll() ([]byte, error) {
	for !b.done {
		if b.srcErr != nil {
			if err := b.eofError(); err != io.EOF {
				return nil, err
			}
			break
		}
		if err := b.fill(); err != nil {
			return nil, err
		}
	}
	body := b.buf[b.start:b.end]
	b.start = b.end
	return body, nil
}
