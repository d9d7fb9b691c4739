package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// client is how the tool reaches the server: the target's address and the spread of
// loopback source addresses connections are made from. Safe for concurrent use.
type client struct {
	hostport string // "127.0.0.1:8080"
	ip       [4]byte
	port     int
	token    string

	sources []net.IP
	next    atomic.Uint64
}

// parseTarget accepts only http URLs whose host is in 127.0.0.0/8 (or "localhost"):
// the tool opens tens of thousands of connections and must never point them elsewhere.
func parseTarget(target string) (hostport string, port int, err error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return "", 0, fmt.Errorf("-target %q: want http://127.x.y.z:port", target)
	}
	host, ps := u.Hostname(), u.Port()
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || ip.To4()[0] != 127 {
		return "", 0, fmt.Errorf("-target %q: only loopback targets in 127.0.0.0/8 are allowed", target)
	}
	if ps == "" {
		ps = "80"
	}
	port, err = strconv.Atoi(ps)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("-target %q: bad port", target)
	}
	return net.JoinHostPort(host, ps), port, nil
}

// newClient spreads connections over n source addresses 127.1.x.y. The first is chosen
// at random so that back-to-back runs do not meet the previous run's TIME_WAIT sockets.
func newClient(target, token string, n int) (*client, error) {
	hostport, port, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	n = max(1, min(n, 250*250))
	c := &client{hostport: hostport, port: port, token: token}
	host, _, _ := net.SplitHostPort(hostport)
	copy(c.ip[:], net.ParseIP(host).To4())
	base := rand.IntN(250 * 250)
	for i := range n {
		k := (base + i) % (250 * 250)
		c.sources = append(c.sources, net.IPv4(127, 1, byte(k/250+1), byte(k%250+1)).To4())
	}
	return c, nil
}

// dial connects from the next source address. A source whose ports are exhausted is
// skipped for the next.
func (c *client) dial(ctx context.Context) (net.Conn, error) {
	var err error
	for range 3 {
		src := c.sources[c.next.Add(1)%uint64(len(c.sources))]
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}
		var conn net.Conn
		conn, err = d.DialContext(ctx, "tcp", c.hostport)
		if err == nil {
			return conn, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return nil, err
		}
	}
	return nil, err
}
