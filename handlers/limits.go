package handlers

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// addrLimiter caps the open streams of each client address, so that one host cannot take
// every stream the server can hold. It counts streams, not connections: twenty streams
// multiplexed on one HTTP/2 connection count twenty. Safe for concurrent use.
type addrLimiter struct {
	max int // streams per address; 0: no cap

	mu   sync.Mutex
	open map[string]int // address -> open streams; an address leaves the map at zero
}

func newAddrLimiter(max int) *addrLimiter {
	return &addrLimiter{max: max, open: make(map[string]int)}
}

// acquire counts one more stream for the client of r. It returns false, counting
// nothing, when the address holds max streams already; otherwise release must be called
// once the stream ends.
func (l *addrLimiter) acquire(r *http.Request) (release func(), ok bool) {
	if l == nil || l.max <= 0 {
		return func() {}, true
	}
	addr := clientAddr(r)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[addr] >= l.max {
		return nil, false
	}
	l.open[addr]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.open[addr]--; l.open[addr] <= 0 {
				delete(l.open, addr)
			}
		})
	}, true
}

// clientAddr is the host part of the peer address: the client itself, or the proxy in
// front of it. Forwarding headers are not trusted, since any client can send them.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// tooManyStreams answers a client at its per-address cap: 429, Retry-After and a JSON
// error, and no stream.
func tooManyStreams(max int, retry time.Duration) error {
	return &httpError{status: http.StatusTooManyRequests, retryAfter: retrySeconds(retry),
		msg: "too many open streams from this address (at most " + strconv.Itoa(max) + "); close one or retry later"}
}

// bodyTimeout bounds how long a publish may take to send its body. The server has no
// ReadTimeout (it would end every stream), so without this a client dribbling a body a
// byte at a time would hold its connection forever.
const bodyTimeout = 30 * time.Second

// readWithin gives the request d from now to be read in full; a slower body fails to
// read, which the handler answers with a 400 before the connection is closed.
func readWithin(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		next.ServeHTTP(w, r)
	})
}
