package hub

import (
	"net"
	"syscall"
	"unsafe"
)

// fdSink sends to a socket's descriptor without waiting: Go's sockets are non-blocking,
// so a full socket answers EAGAIN instead of parking the writer. The send runs inside
// RawConn.Control, which keeps the descriptor from being closed (and its number reused)
// meanwhile. Control, unlike RawConn.Write, does not take the descriptor's write lock or
// reset its poller state: only the stream's writer ever writes the socket, and it never
// waits for it through Go's poller. send(2) rather than write(2) skips the file layer,
// and MSG_NOSIGNAL spares a signal when the client is gone. BENCHMARKS.md has what each
// saved in the fan-out run. fn is made once per stream, so a write allocates nothing.
type fdSink struct {
	conn net.Conn
	raw  syscall.RawConn
	fn   func(fd uintptr)
	b    []byte // what fn sends, and what it did
	n    int
	err  syscall.Errno
}

// newSink returns the fastest sink for conn and its descriptor (-1 when it has none).
func newSink(conn net.Conn) (sink, int) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return connSink{conn}, -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return connSink{conn}, -1
	}
	fd := -1
	if raw.Control(func(d uintptr) { fd = int(d) }) != nil || fd < 0 {
		return connSink{conn}, -1
	}
	s := &fdSink{conn: conn, raw: raw}
	s.fn = func(fd uintptr) {
		for {
			// Not the raw form, though a send on a non-blocking socket never blocks:
			// while the writer is in the kernel, Go may hand its processor to the
			// goroutines waiting for one (publishes, the dispatcher).
			n, _, e := syscall.Syscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&s.b[0])),
				uintptr(len(s.b)), syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL, 0, 0)
			if e != syscall.EINTR {
				s.n, s.err = int(n), e
				if e != 0 {
					s.n = 0
				}
				return
			}
		}
	}
	return s, fd
}

func (s *fdSink) write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	s.b = b
	err := s.raw.Control(s.fn)
	s.b = nil
	switch {
	case err != nil:
		return 0, err // closed
	case s.err == syscall.EAGAIN:
		return 0, errAgain
	case s.err != 0:
		return 0, s.err
	case s.n < len(b):
		return s.n, errAgain
	}
	return s.n, nil
}

func (s *fdSink) close() error { return s.conn.Close() }

// yieldThread lets the kernel run the process's other threads now, should they be waiting
// for this core.
func yieldThread() { syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
