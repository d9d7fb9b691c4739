package handlers

import (
	"net"
	"sync"
	"syscall"
	"unsafe"
)

// fdSink sends to a socket's descriptor without waiting: Go's sockets are non-blocking,
// so a full socket answers EAGAIN instead of parking the writer. The send runs inside
// RawConn.Control, which keeps the descriptor from being closed (and its number reused)
// meanwhile. Control, unlike RawConn.Write, does not take the descriptor's write lock or
// reset its poller state: only the stream's writer ever writes the socket, and it never
// waits for it through Go's poller. send(2) rather than write(2) skips the file layer,
// and MSG_NOSIGNAL spares a signal when the client is gone. Together they cut the server's
// core time per write from 6.7 to 5.9 µs in the fan-out run (BENCHMARKS.md). fn is made
// once per stream, so a write allocates nothing.
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

// epollET is EPOLLET as the uint32 that EpollEvent.Events holds.
const epollET = 1 << 31

// watcher is one epoll instance watching every hub socket for the client hanging up
// (EPOLLRDHUP, EPOLLHUP, EPOLLERR) and, after a short write, for room to write again
// (edge-triggered EPOLLOUT, which the kernel reports only after the socket was full).
// It costs one goroutine, parked in epoll_wait, for all streams.
type watcher struct {
	h    *Hub
	epfd int
	pipe [2]int // written by close to end run
	mu   sync.Mutex
	byFD map[int32]*hstream
	gen  uint32
}

func newWatcher(h *Hub) (*watcher, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	w := &watcher{h: h, epfd: epfd, byFD: make(map[int32]*hstream)}
	if err := syscall.Pipe2(w.pipe[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(w.pipe[0])} // Pad 0: the pipe
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, w.pipe[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(w.pipe[0])
		syscall.Close(w.pipe[1])
		return nil, err
	}
	return w, nil
}

// close releases the descriptors once run has returned.
func (w *watcher) close() {
	syscall.Close(w.epfd)
	syscall.Close(w.pipe[0])
	syscall.Close(w.pipe[1])
}

// add watches s's socket.
func (w *watcher) add(s *hstream) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gen++
	if w.gen == 0 {
		w.gen = 1 // 0 marks the pipe
	}
	s.gen = w.gen
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLRDHUP | syscall.EPOLLOUT | epollET,
		Fd:     int32(s.fd),
		Pad:    int32(s.gen),
	}
	if err := syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
		return err
	}
	w.byFD[int32(s.fd)] = s
	return nil
}

// remove stops watching s's socket; call it before closing the socket, whose number
// may then be reused.
func (w *watcher) remove(s *hstream) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byFD[int32(s.fd)] == s {
		delete(w.byFD, int32(s.fd))
		_ = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, s.fd, nil)
	}
}

// run hands every event to the stream's writer until stop is closed.
func (w *watcher) run(stop <-chan struct{}) {
	woken := make(chan struct{})
	go func() {
		// epoll_wait has no other way out than an event: stop writes to the pipe.
		<-stop
		syscall.Write(w.pipe[1], []byte{1})
		close(woken)
	}()
	defer func() { <-woken }()
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(w.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			if ev.Pad == 0 {
				return
			}
			w.mu.Lock()
			s := w.byFD[ev.Fd]
			w.mu.Unlock()
			if s == nil || s.gen != uint32(ev.Pad) {
				continue // a socket closed since, its number perhaps reused
			}
			if ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
				s.hungUp.Store(true)
			}
			if ev.Events&syscall.EPOLLOUT != 0 {
				s.writable.Store(true)
			}
			s.sh.enqueue(s)
		}
	}
}

// yieldThread lets the kernel run the process's other threads now, should they be waiting
// for this core.
func yieldThread() { syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
