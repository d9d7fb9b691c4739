package main

import (
	"bytes"
	"errors"
	"io"
	"net/http/httputil"
	"strings"
	"testing"
)

// pieces is a reader that returns its input in reads of the given sizes, cycling, to
// put read boundaries everywhere a real connection could.
type pieces struct {
	data  []byte
	sizes []int
	i     int
}

func (p *pieces) Read(b []byte) (int, error) {
	if len(p.data) == 0 {
		return 0, io.EOF
	}
	n := len(p.data)
	if len(p.sizes) > 0 {
		n = max(1, p.sizes[p.i%len(p.sizes)])
		p.i++
	}
	n = min(n, len(b), len(p.data))
	copy(b, p.data[:n])
	p.data = p.data[n:]
	return n, nil
}

// chunk encodes payload with the standard library's chunked writer, one chunk per part.
func chunk(parts ...string) string {
	var buf bytes.Buffer
	w := httputil.NewChunkedWriter(&buf)
	for _, p := range parts {
		io.WriteString(w, p)
	}
	w.Close()
	buf.WriteString("\r\n") // no trailer
	return buf.String()
}

// lines reads every line of the body and how it ended.
func lines(b *bodyReader) ([]string, error) {
	var out []string
	for {
		l, err := b.line()
		if err != nil {
			return out, err
		}
		out = append(out, string(l))
	}
}

func TestBodyLines(t *testing.T) {
	const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"
	tests := []struct {
		name    string
		mode    int
		length  int64
		body    string
		want    []string
		wantErr error
	}{
		{"chunked one chunk", modeChunked, 0, chunk("a\nb\n"), []string{"a", "b"}, io.EOF},
		{"chunked line across chunks", modeChunked, 0, chunk("ab", "c\nd", "e\n"), []string{"abc", "de"}, io.EOF},
		{"chunked CRLF and CR", modeChunked, 0, chunk("a\r\nb\rc\r", "\nd\n"), []string{"a", "b", "c", "d"}, io.EOF},
		{"chunked extension and trailer", modeChunked, 0, "4;x=y\r\nab\n\n\r\n0\r\nX-T: 1\r\n\r\n", []string{"ab", ""}, io.EOF},
		{"chunked upper hex", modeChunked, 0, "1A\r\n" + strings.Repeat("z", 25) + "\n\r\n0\r\n\r\n", []string{strings.Repeat("z", 25)}, io.EOF},
		{"chunked bare LF framing", modeChunked, 0, "2\nx\n\n0\n\n", []string{"x"}, io.EOF},
		{"chunked cut", modeChunked, 0, "5\r\nab\ncd", []string{"ab"}, io.ErrUnexpectedEOF},
		{"chunked bad size", modeChunked, 0, "zz\r\nab\r\n", nil, errBadChunk},
		{"chunked missing CRLF", modeChunked, 0, "2\r\nabXX", nil, errBadChunk},
		{"length", modeLength, 6, "ab\ncd\nEXTRA\n", []string{"ab", "cd"}, io.EOF},
		{"length short", modeLength, 10, "ab\n", []string{"ab"}, io.ErrUnexpectedEOF},
		{"raw to EOF", modeRaw, 0, "ab\ncd\n", []string{"ab", "cd"}, io.EOF},
		{"unterminated last line dropped", modeRaw, 0, "ab\ncd", []string{"ab"}, io.EOF},
	}
	for _, tt := range tests {
		for _, sizes := range [][]int{nil, {1}, {3, 7, 2}} {
			src := &pieces{data: []byte(head + tt.body), sizes: sizes}
			b := newBodyReader(src, 16, 1<<10)
			h, err := readHeader(b)
			if err != nil {
				t.Fatalf("%s %v: header: %v", tt.name, sizes, err)
			}
			if h.status != 200 || !h.chunked || h.contentType != "text/event-stream" {
				t.Fatalf("%s: header = %+v", tt.name, h)
			}
			if err := b.setBody(tt.mode, tt.length); err != nil {
				if !errors.Is(err, tt.wantErr) || tt.want != nil {
					t.Fatalf("%s %v: setBody: %v", tt.name, sizes, err)
				}
				continue
			}
			got, err := lines(b)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("%s %v: lines = %q, want %q", tt.name, sizes, got, tt.want)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s %v: err = %v, want %v", tt.name, sizes, err, tt.wantErr)
			}
		}
	}
}

func TestHeader(t *testing.T) {
	tests := []struct {
		in      string
		want    respHeader
		wantErr bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", respHeader{status: 200, contentLength: 12}, false},
		{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", respHeader{status: 204, contentLength: -1}, false},
		{"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nconnection: keep-alive, Close\r\n\r\n",
			respHeader{status: 503, contentLength: -1, close: true, retryAfter: "1"}, false},
		{"HTTP/1.0 200 OK\ntransfer-encoding: gzip, chunked\n\n", respHeader{status: 200, contentLength: -1, chunked: true}, false},
		{"SSH-2.0-OpenSSH\r\n\r\n", respHeader{}, true},
		{"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", respHeader{}, true},
		{"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", respHeader{}, true},
		{"HTTP/1.1 2xx OK\r\n\r\n", respHeader{}, true},
	}
	for _, tt := range tests {
		got, err := readHeader(newBodyReader(strings.NewReader(tt.in), 64, 1024))
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: err = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && got != tt.want {
			t.Errorf("%q: got %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// TestKeepAlive reads responses of every framing one after another on one connection,
// as the publisher does.
func TestKeepAlive(t *testing.T) {
	in := "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{\"id\":\"1\"}" + // 10 bytes: one left over
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{\"id\":\"2\"}" +
		"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(`{"error":`, `"no"}`) +
		"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nrest"
	for _, sizes := range [][]int{nil, {1}, {5, 2}} {
		b := newBodyReader(&pieces{data: []byte(in), sizes: sizes}, 32, 1<<10)
		var got []string
		for {
			h, err := readHeader(b)
			if err == io.EOF {
				break
			}
			if err != nil {
				got = append(got, "error")
				break
			}
			mode, n := h.bodyMode()
			if err := b.setBody(mode, n); err != nil {
				t.Fatal(err)
			}
			body, err := b.readAll()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(body))
			if h.close {
				break
			}
			if err := b.nextResponse(); err != nil {
				t.Fatal(err)
			}
		}
		want := `{"id":"1"|error`
		if g := strings.Join(got, "|"); g != want {
			t.Errorf("sizes %v: bodies %s, want %s", sizes, g, want)
		}
	}
	// The same without the stray byte.
	in = strings.Replace(in, "{\"id\":\"1\"}", "{\"id\":12}", 1)
	b := newBodyReader(&pieces{data: []byte(in), sizes: []int{3}}, 32, 1<<10)
	var got []string
	for {
		h, err := readHeader(b)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		mode, n := h.bodyMode()
		b.setBody(mode, n)
		body, err := b.readAll()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(body))
		if h.close {
			break
		}
		b.nextResponse()
	}
	if g, want := strings.Join(got, "|"), `{"id":12}|{"id":"2"}|{"error":"no"}|rest`; g != want {
		t.Errorf("bodies %s, want %s", g, want)
	}
}

func TestLineTooLong(t *testing.T) {
	b := newBodyReader(strings.NewReader(strings.Repeat("x", 100)+"\n"), 16, 64)
	if _, err := b.line(); !errors.Is(err, errLineTooLong) {
		t.Fatalf("err = %v, want errLineTooLong", err)
	}
	b = newBodyReader(strings.NewReader(strings.Repeat("x", 100)+"\n"), 16, 128)
	if l, err := b.line(); err != nil || len(l) != 100 {
		t.Fatalf("line of %d, %v; want 100 bytes", len(l), err)
	}
}

// FuzzChunked checks that any payload, chunked in any way and read in any pieces,
// decodes to itself.
func FuzzChunked(f *testing.F) {
	f.Add([]byte("data: x\n\n"), uint8(3), uint8(1))
	f.Add([]byte("a\r\nb\rc\n"), uint8(1), uint8(2))
	f.Add(bytes.Repeat([]byte("0123456789abcdef"), 40), uint8(200), uint8(7))
	f.Fuzz(func(t *testing.T, payload []byte, chunkLen, readLen uint8) {
		var parts []string
		for p := payload; len(p) > 0; {
			n := min(len(p), int(chunkLen)+1)
			parts = append(parts, string(p[:n]))
			p = p[n:]
		}
		src := &pieces{data: []byte(chunk(parts...)), sizes: []int{int(readLen) + 1}}
		b := newBodyReader(src, 8, 1<<16)
		if err := b.setBody(modeChunked, 0); err != nil {
			t.Fatal(err)
		}
		got, err := b.readAll()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("decoded %q, want %q", got, payload)
		}
	})
}

// FuzzBodyArbitrary feeds arbitrary bytes: the reader may fail but must not panic or
// loop.
func FuzzBodyArbitrary(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab\n\r\n0\r\n\r\n"), uint8(2))
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\n\r\r\n\n"), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, readLen uint8) {
		b := newBodyReader(&pieces{data: in, sizes: []int{int(readLen) + 1}}, 8, 1<<12)
		h, err := readHeader(b)
		if err != nil {
			return
		}
		mode, n := h.bodyMode()
		if b.setBody(mode, n) != nil {
			return
		}
		p := &sseParser{r: b}
		for i := 0; i <= len(in); i++ {
			if _, err := p.next(); err != nil {
				return
			}
		}
		t.Fatalf("more results than input bytes")
	})
}
