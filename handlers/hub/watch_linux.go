package hub

import (
	"sync"
	"syscall"
)

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
