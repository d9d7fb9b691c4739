package handlers

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// acceptLogEvery is the least time between two logged accept errors: out of file
// descriptors, every accept fails at once, thousands of times a second.
const acceptLogEvery = 10 * time.Second

// WatchAccepts wraps ln so that its failed accepts (out of file descriptors, most often)
// are counted in crier_accept_errors_total and logged at warn, at most once every ten
// seconds with how many were not. net/http retries them itself and logs them only at
// debug, so without this running out of descriptors is silent. A nil reg counts nowhere.
func WatchAccepts(ln net.Listener, log *slog.Logger, reg prometheus.Registerer) (net.Listener, error) {
	w := &acceptWatch{Listener: ln, log: log, errors: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "crier_accept_errors_total",
		Help: "Connections the listener failed to accept (such as for want of file descriptors).",
	})}
	if reg != nil {
		if err := reg.Register(w.errors); err != nil {
			return nil, err
		}
	}
	return w, nil
}

type acceptWatch struct {
	net.Listener
	log    *slog.Logger
	errors prometheus.Counter

	mu     sync.Mutex
	logged time.Time // when the last error was logged
	quiet  int       // errors since then, not logged
}

func (w *acceptWatch) Accept() (net.Conn, error) {
	c, err := w.Listener.Accept()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		w.errors.Inc()
		w.mu.Lock()
		now := time.Now()
		if w.logged.IsZero() || now.Sub(w.logged) >= acceptLogEvery {
			w.log.Warn("cannot accept connections", "err", err, "not_logged", w.quiet)
			w.logged, w.quiet = now, 0
		} else {
			w.quiet++
		}
		w.mu.Unlock()
	}
	return c, err
}
