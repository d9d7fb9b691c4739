package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crierhq/crier/internal/testenv"
)

// TestFDReaderDrains checks the edge-triggered reading rule: after one readiness the
// reader keeps reading while reads fill the buffer, stops after a short read without
// another system call, and reports the end once the peer has closed.
func TestFDReaderDrains(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sent, buf int
		want      []int // bytes returned by each Read before it says it would block
	}{
		{"nothing waiting", 0, 4096, nil},
		{"less than a buffer", 100, 4096, []int{100}},
		{"a buffer and a short read", 5000, 4096, []int{4096, 904}},
		{"exact buffers, then EAGAIN", 8192, 4096, []int{4096, 4096}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(fds[0])
			peerOpen := true
			closePeer := func() {
				if peerOpen {
					syscall.Close(fds[1])
					peerOpen = false
				}
			}
			defer closePeer()
			sent := bytes.Repeat([]byte("0123456789"), tc.sent/10+1)[:tc.sent]
			if len(sent) > 0 {
				if n, err := syscall.Write(fds[1], sent); n != len(sent) || err != nil {
					t.Fatalf("write: %d, %v", n, err)
				}
			}

			r := &fdReader{fd: fds[0], budget: 1} // one readiness
			p := make([]byte, tc.buf)
			var got []int
			var all []byte
			for {
				n, err := r.Read(p)
				if errors.Is(err, errWouldBlock) {
					break
				}
				if err != nil {
					t.Fatalf("read %d: %v", len(got)+1, err)
				}
				got = append(got, n)
				all = append(all, p[:n]...)
				if len(got) > len(tc.want)+1 {
					break
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("reads returned %v before blocking, want %v", got, tc.want)
			}
			if !bytes.Equal(all, sent) {
				t.Errorf("read %d bytes, want the %d sent", len(all), len(sent))
			}

			closePeer()
			r.budget = 1 // the hang-up is a readiness of its own
			if _, err := r.Read(p); err != io.EOF {
				t.Errorf("after the peer closed: %v, want io.EOF", err)
			}
		})
	}
}

// TestEpollSeesServerEnd: a server that writes a stream's last bytes and closes the
// connection at once, as crier does when it cuts a slow stream off, puts the data and
// the end in the socket before the loop reads it: the loop must read on to the end, not
// stop at the short read and wait for an edge that will not come, and so count the
// stream ended rather than keep it open (and its events owed) for ever.
func TestEpollSeesServerEnd(t *testing.T) {
	const streams = 50
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan net.Conn, streams)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				rd := bufio.NewReader(c)
				for {
					line, err := rd.ReadString('\n')
					if err != nil {
						c.Close()
						return
					}
					if line == "\r\n" {
						break
					}
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"+
					"d\r\nretry: 1000\n\n\r\n")
				conns <- c
			}()
		}
	}()

	c, err := newClient("http://"+ln.Addr().String(), "", 4)
	if err != nil {
		t.Fatal(err)
	}
	l, err := newLoop(newFDTable(4096), false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.stop()
	p := newPool(c, "", 4096, []*loop{l})
	defer p.closeAll()
	if n := p.add(t.Context(), streams, streams); n != streams {
		t.Fatalf("%d of %d streams opened: %v", n, streams, p.err())
	}
	events := strings.Repeat("event: other\ndata: x\n\n", 100)
	last := fmt.Sprintf("%x\r\n%s\r\n", len(events), events) // a chunk, not the last one
	for range streams {
		c := <-conns
		io.WriteString(c, last) // the end of the stream follows at once, without a last chunk
		c.Close()
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if open, dropped := p.open.Load(), p.dropped.Load(); open > 0 || dropped != streams {
			return fmt.Errorf("%d streams still open, %d of %d seen ended by the server", open, dropped, streams)
		}
		return nil
	})
}
