package main

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// The epoll engine reads every stream from a few event loops instead of a goroutine per
// stream: a loop waits on its own epoll instance for many non-blocking sockets and makes
// exactly one read(2) per ready socket, then parses what is buffered. Nothing is
// scheduled per event but that read, which is what lets one core take hundreds of
// thousands of deliveries per second. The epoll descriptor is itself registered with
// the Go runtime's poller (an epoll fd is pollable), so an idle loop parks like any
// goroutine and never holds a thread in epoll_wait.

var errOpenTimeout = errors.New("loadtest: stream did not open within 15s")

// Stream states in the epoll engine.
const (
	stConnecting = iota
	stHeader
	stFirstLine
	stOpen
)

// fdTable maps descriptors to their streams for the loops. Safe for concurrent use.
type fdTable struct {
	slots []atomic.Pointer[stream]
}

func newFDTable(limit uint64) *fdTable {
	return &fdTable{slots: make([]atomic.Pointer[stream], limit+1024)}
}

func (t *fdTable) get(fd int) *stream {
	if fd < 0 || fd >= len(t.slots) {
		return nil
	}
	return t.slots[fd].Load()
}

func (t *fdTable) set(fd int, s *stream) bool {
	if fd < 0 || fd >= len(t.slots) {
		return false
	}
	t.slots[fd].Store(s)
	return true
}

// loop is one epoll instance and the goroutine that serves it.
type loop struct {
	epfd   int
	file   *os.File // epfd, registered with the runtime's poller
	raw    syscall.RawConn
	table  *fdTable
	events [256]syscall.EpollEvent
	done   chan struct{}
	yield  bool // let the process's other threads run every few hundred sockets

	// Closing requests from other goroutines: streams are closed on the loop only, so a
	// descriptor is never closed while the loop may still read it.
	wakeR, wakeW int
	mu           sync.Mutex
	closing      []*stream
}

func newLoop(table *fdTable, yield bool) (*loop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	var pipe [2]int
	if err := syscall.Pipe2(pipe[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("pipe2", err)
	}
	l := &loop{epfd: epfd, table: table, done: make(chan struct{}), yield: yield, wakeR: pipe[0], wakeW: pipe[1]}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(l.wakeR)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, l.wakeR, &ev); err != nil {
		l.closeFDs()
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		l.closeFDs()
		return nil, err
	}
	l.file = os.NewFile(uintptr(epfd), "epoll")
	if l.raw, err = l.file.SyscallConn(); err != nil {
		l.file.Close()
		syscall.Close(l.wakeR)
		syscall.Close(l.wakeW)
		return nil, err
	}
	go l.run()
	return l, nil
}

func (l *loop) closeFDs() {
	syscall.Close(l.epfd)
	syscall.Close(l.wakeR)
	syscall.Close(l.wakeW)
}

// run serves ready descriptors until stop closes the epoll file.
func (l *loop) run() {
	defer close(l.done)
	const yieldEvery = 256
	served := 0
	for {
		err := l.raw.Read(func(uintptr) bool {
			n, err := syscall.EpollWait(l.epfd, l.events[:], 0)
			if err == syscall.EINTR {
				return true
			}
			if n <= 0 {
				return false // park until the epoll fd is readable
			}
			for i := range n {
				l.dispatch(&l.events[i])
			}
			served += n
			return true
		})
		// A busy loop would keep its thread on the core until the kernel preempts it,
		// delaying the tool's other threads (the publishers, whose latency is measured)
		// by milliseconds: let them run every few hundred sockets served.
		if l.yield && served >= yieldEvery {
			served = 0
			syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
		}
		if err != nil {
			return
		}
	}
}

// stop ends the loop; every stream must have ended first.
func (l *loop) stop() {
	l.file.Close()
	<-l.done
	syscall.Close(l.wakeR)
	syscall.Close(l.wakeW)
}

func (l *loop) dispatch(ev *syscall.EpollEvent) {
	fd := int(ev.Fd)
	if fd == l.wakeR {
		var buf [64]byte
		for {
			if n, err := syscall.Read(l.wakeR, buf[:]); n <= 0 || err != nil {
				break
			}
		}
		l.mu.Lock()
		list := l.closing
		l.closing = nil
		l.mu.Unlock()
		for _, s := range list {
			if s.fd >= 0 {
				s.end(errClosing)
			}
		}
		return
	}
	if s := l.table.get(fd); s != nil {
		s.onEvents(ev.Events)
	}
}

// requestClose asks the loop to end s.
func (l *loop) requestClose(s *stream) {
	l.mu.Lock()
	first := len(l.closing) == 0
	l.closing = append(l.closing, s)
	l.mu.Unlock()
	if first {
		syscall.Write(l.wakeW, []byte{1}) // a full pipe is awake enough
	}
}

// connect starts a non-blocking connection for s from the client's next source address
// and hands it to the loop.
func (l *loop) connect(c *client, s *stream) error {
	dst := &syscall.SockaddrInet4{Port: c.port, Addr: c.ip}
	var err error
	for range 3 {
		src := &syscall.SockaddrInet4{}
		copy(src.Addr[:], c.sources[c.next.Add(1)%uint64(len(c.sources))])
		var fd int
		fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return os.NewSyscallError("socket", err)
		}
		if err = syscall.Bind(fd, src); err != nil {
			syscall.Close(fd)
			if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL) {
				continue
			}
			return os.NewSyscallError("bind", err)
		}
		if err = syscall.Connect(fd, dst); err != nil && err != syscall.EINPROGRESS {
			syscall.Close(fd)
			if errors.Is(err, syscall.EADDRNOTAVAIL) {
				continue
			}
			return os.NewSyscallError("connect", err)
		}
		// The timer is set before the loop can see the stream, and under its lock, since
		// the loop reads it when the stream ends.
		timer := time.AfterFunc(s.pool.openTimeout(), func() {
			if !s.readied.Load() {
				s.timedOut.Store(true)
				l.requestClose(s)
			}
		})
		s.mu.Lock()
		s.fd, s.loop, s.state = fd, l, stConnecting
		s.rd.fd = fd
		s.openTimer = timer
		s.mu.Unlock()
		if !l.table.set(fd, s) {
			timer.Stop()
			syscall.Close(fd)
			return errors.New("loadtest: descriptor beyond the open-file limit")
		}
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP, Fd: int32(fd)}
		if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			timer.Stop()
			l.table.set(fd, nil)
			syscall.Close(fd)
			return os.NewSyscallError("epoll_ctl", err)
		}
		if s.isClosing() {
			l.requestClose(s) // close came before the descriptor was known
		}
		return nil
	}
	return os.NewSyscallError("bind", err)
}

// onEvents advances s on the loop's goroutine.
func (s *stream) onEvents(events uint32) {
	if s.state == stConnecting {
		if errno, err := syscall.GetsockoptInt(s.fd, syscall.SOL_SOCKET, syscall.SO_ERROR); err != nil || errno != 0 {
			if err == nil {
				err = os.NewSyscallError("connect", syscall.Errno(errno))
			}
			s.end(err)
			return
		}
		if events&syscall.EPOLLOUT == 0 {
			return
		}
		if n, err := syscall.Write(s.fd, s.pool.request); err != nil || n != len(s.pool.request) {
			if err == nil {
				err = io.ErrShortWrite
			}
			s.end(err)
			return
		}
		// Edge-triggered from now on: a level-triggered socket that was read stays on
		// epoll's ready list and is polled again on the next wait, which cost the tool a
		// tenth of its core at 150k reads/s. The reader drains the socket instead.
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(s.fd)}
		if err := syscall.EpollCtl(s.loop.epfd, syscall.EPOLL_CTL_MOD, s.fd, &ev); err != nil {
			s.end(os.NewSyscallError("epoll_ctl", err))
			return
		}
		s.br.reset(&s.rd, s.pool.bufSize, 1<<20)
		s.state = stHeader
		return
	}
	s.rd.budget = 1 // read until the socket is drained; parse what is buffered, then wait again
	s.rd.hungUp = events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0
	if s.state == stHeader {
		for !s.headerBuffered() {
			err := s.br.fill()
			if err == errWouldBlock {
				return // drained: the next edge brings the rest
			}
			if err == nil && s.br.srcErr != nil {
				err = s.br.eofError()
			}
			if err != nil {
				s.end(err)
				return
			}
		}
		if err := s.startBody(); err != nil {
			s.end(err)
			return
		}
		s.state = stFirstLine
	}
	for {
		kind, err := s.sse.next()
		if err == errWouldBlock {
			return
		}
		if err != nil {
			s.end(err)
			return
		}
		if s.state == stFirstLine {
			s.state = stOpen
			s.opened()
		}
		s.handle(kind)
	}
}

// headerBuffered reports whether the whole response header is in the buffer, so that
// readHeader, which cannot resume, never waits for more.
func (s *stream) headerBuffered() bool {
	b := s.br.buf[s.br.start:s.br.end]
	for i := 0; i+1 < len(b); i++ {
		if b[i] == '\n' && (b[i+1] == '\n' || (b[i+1] == '\r' && i+2 < len(b) && b[i+2] == '\n')) {
			return true
		}
	}
	return false
}

// end closes the stream's descriptor on the loop and settles its accounting.
func (s *stream) end(err error) {
	s.mu.Lock()
	fd, timer := s.fd, s.openTimer
	s.fd = -1
	s.mu.Unlock()
	if fd < 0 {
		return
	}
	if timer != nil {
		timer.Stop()
	}
	s.loop.table.set(fd, nil)
	syscall.EpollCtl(s.loop.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
	syscall.Close(fd)
	if s.state == stOpen {
		s.ended(err)
	} else {
		if s.timedOut.Load() {
			err = errOpenTimeout
		} else if s.isClosing() {
			err = errClosing
		}
		s.readied.Store(true)
		s.ready(err)
	}
	s.pool.wg.Done()
}

// fdReader reads a non-blocking, edge-triggered socket until it is drained, then says it
// would block: a read that fills p may have left more behind, so it earns another;
// a short one emptied the socket of data (TCP hands over all it has, up to len(p)), so
// no read is spent finding nothing. But not of the peer's end: a hang-up that came with
// the last data, before this readiness was served, is reported by the next read alone,
// and no later edge announces it, so once the readiness says the peer hung up, every
// read earns another until the end is read.
type fdReader struct {
	fd     int
	budget int
	hungUp bool // this readiness came with EPOLLRDHUP, EPOLLHUP or EPOLLERR
}

// epollET is EPOLLET as the uint32 that EpollEvent.Events holds.
const epollET = 1 << 31

func (r *fdReader) Read(p []byte) (int, error) {
	if r.budget <= 0 || len(p) == 0 {
		return 0, errWouldBlock
	}
	r.budget--
	n, e := recv(r.fd, p)
	switch {
	case e == syscall.EAGAIN:
		return 0, errWouldBlock
	case e != 0:
		return 0, e
	case n == 0:
		return 0, io.EOF
	}
	if int(n) == len(p) || r.hungUp {
		r.budget = 1
	}
	return int(n), nil
}

// recv receives into p from a non-blocking socket. It never blocks: the raw form spares
// the scheduler hand-off of syscall.Read, and recvfrom(2) the file layer of read(2). An
// interrupted call is retried, since no edge would announce the data again.
func recv(fd int, p []byte) (uintptr, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
		if e != syscall.EINTR {
			return n, e
		}
	}
}
