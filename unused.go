package main

import (
	"net"
	"net/http"
	"sync"
)

// unused tracks the connections that have not sent a request yet. http.Server.Shutdown
// counts such a connection as busy for its first 5 seconds, so one that never sends
// anything (a browser's preconnect, a client's spare connection) would hold a shutdown up
// that long, past a shorter -shutdown-timeout. Nobody will use them once crier stops:
// close closes them.
type unused struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
}

// track is an http.Server.ConnState hook.
func (u *unused) track(c net.Conn, s http.ConnState) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case s == http.StateNew && u.done:
		_ = c.Close()
	case s == http.StateNew:
		if u.conns == nil {
			u.conns = make(map[net.Conn]struct{})
		}
		u.conns[c] = struct{}{}
	default:
		delete(u.conns, c)
	}
}

// close closes the connections that have not sent a request, and those that arrive from
// now on.
func (u *unused) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.done = true
	for c := range u.conns {
		_ = c.Close()
	}
	clear(u.conns)
}
