package main

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"syscall"
	"testing"
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
