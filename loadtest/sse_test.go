package main

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

// blocking is a non-blocking source: every other read says it would block, as a
// socket with nothing buffered does for the epoll engine.
type blocking struct {
	r    io.Reader
	turn bool
}

func (b *blocking) Read(p []byte) (int, error) {
	b.turn = !b.turn
	if b.turn {
		return 0, errWouldBlock
	}
	return b.r.Read(p)
}

// collect parses a whole stream and renders what it found, one item per entry. With
// sizes, it reads in pieces of those sizes, and every other read would block: the
// parser must resume where it stopped.
func collect(in string, sizes []int) ([]string, error) {
	var src io.Reader = &pieces{data: []byte(in), sizes: sizes}
	if sizes != nil {
		src = &blocking{r: src}
	}
	p := &sseParser{r: newBodyReader(src, 16, 1<<12)}
	var out []string
	for {
		kind, err := p.next()
		if err == errWouldBlock {
			continue
		}
		if err != nil {
			return out, err
		}
		switch kind {
		case kindEvent:
			out = append(out, fmt.Sprintf("%s#%s=%q", p.name, p.id, p.out))
		case kindComment:
			out = append(out, "comment")
		case kindRetry:
			out = append(out, fmt.Sprintf("retry %d", p.retry))
		}
	}
}

func TestSSE(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"crier's shape", "retry: 3000\n\nid: 1\nevent: new_user\ndata: {\"a\":1}\n\n: hb\n\n",
			[]string{"retry 3000", `new_user#1="{\"a\":1}"`, "comment"}},
		{"default name", "data: x\n\n", []string{`message#="x"`}},
		{"multi-line data", "data: a\ndata:b\ndata:  c\n\n", []string{`message#="a\nb\n c"`}},
		{"empty data line dispatches", "data\n\n", []string{`message#=""`}},
		{"no data: no event", "event: e\nid: 7\n\ndata: y\n\n", []string{`message#7="y"`}},
		{"id persists", "id: 5\ndata: a\n\ndata: b\n\n", []string{`message#5="a"`, `message#5="b"`}},
		{"id with NUL ignored", "id: 5\ndata: a\n\nid: 6\x00\ndata: b\n\n", []string{`message#5="a"`, `message#5="b"`}},
		{"bad retry ignored", "retry: 1x\nretry:\nretry: 20\n", []string{"retry 20"}},
		{"unknown field", "foo: bar\ndata: a\n\n", []string{`message#="a"`}},
		{"CR and CRLF endings", "event: e\rdata: a\r\n\r\n", []string{`e#="a"`}},
		{"unterminated event dropped", "data: a\n\ndata: b\n", []string{`message#="a"`}},
		{"colon in value", "data: a:b: c\n\n", []string{`message#="a:b: c"`}},
	}
	for _, tt := range tests {
		for _, sizes := range [][]int{nil, {1}, {2, 5}} {
			got, err := collect(tt.in, sizes)
			if err != io.EOF {
				t.Errorf("%s: err = %v, want EOF", tt.name, err)
			}
			if strings.Join(got, " | ") != strings.Join(tt.want, " | ") {
				t.Errorf("%s %v:\n got %q\nwant %q", tt.name, sizes, got, tt.want)
			}
		}
	}
}

// referenceSSE is a plain, whole-input reading of the same rules, to compare against.
func referenceSSE(in string) []string {
	in = strings.ReplaceAll(in, "\r\n", "\n")
	in = strings.ReplaceAll(in, "\r", "\n")
	ls := strings.Split(in, "\n")
	ls = ls[:len(ls)-1] // the unterminated remainder is not a line
	var out []string
	var name, id, data string
	n := 0
	for _, l := range ls {
		switch {
		case l == "":
			if n > 0 {
				if name == "" {
					name = "message"
				}
				out = append(out, fmt.Sprintf("%s#%s=%q", name, id, data))
			}
			name, data, n = "", "", 0
		case l[0] == ':':
			out = append(out, "comment")
		default:
			f, v, _ := strings.Cut(l, ":")
			v = strings.TrimPrefix(v, " ")
			switch f {
			case "event":
				name = v
			case "data":
				if n > 0 {
					data += "\n"
				}
				data += v
				n++
			case "id":
				if !strings.Contains(v, "\x00") {
					id = v
				}
			case "retry":
				if d, ok := parseDigits([]byte(v)); ok {
					out = append(out, fmt.Sprintf("retry %d", d))
				}
			}
		}
	}
	return out
}

// FuzzSSE compares the streaming parser, read in arbitrary pieces, with the reference.
func FuzzSSE(f *testing.F) {
	f.Add("retry: 3000\n\nid: 1\nevent: new_user\ndata: {}\n\n: hb\n", uint8(1))
	f.Add("data: a\r\ndata:b\r\rid:\x00\n\n", uint8(2))
	f.Add("event\ndata\n\n\n", uint8(0))
	f.Fuzz(func(t *testing.T, in string, readLen uint8) {
		got, err := collect(in, []int{int(readLen) + 1})
		if err == errLineTooLong {
			return
		}
		want := referenceSSE(in)
		if strings.Join(got, " | ") != strings.Join(want, " | ") {
			t.Fatalf("input %q:\n got %q\nwant %q", in, got, want)
		}
	})
}
