package handlers

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers/sse"
)

// streamer writes a subscription to an HTTP response as Server-Sent Events from the
// request's own goroutine, through the ResponseWriter: the path of the streams the hub
// does not take (HTTP/2, TLS, HTTP/1.0, or no hub at all). The hub writes the others.
type streamer struct {
	heartbeat    time.Duration
	writeTimeout time.Duration
	opening      []byte        // the retry field, sent first
	retry        time.Duration // what opening says
	spread       time.Duration // see Options.ReconnectSpread
}

// farewell is the last thing written to a stream that crier ends itself while its client
// still reads: a retry field drawn uniformly from [retry, retry+spread], so that the
// clients of streams ended together (a shutdown, say) come back spread over the window
// instead of all at once.
func (st *streamer) farewell() []byte {
	d := st.retry
	if st.spread > 0 {
		d += rand.N(st.spread + time.Millisecond)
	}
	return sse.Retry(d.Milliseconds())
}

// stream writes until the client leaves, the subscription ends or a write fails, and
// returns why, for the log.
func (st *streamer) stream(w http.ResponseWriter, r *http.Request, sub *broker.Subscription, tagged bool) closeReason {
	sse.SetHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := st.write(w, rc, sub, st.opening); err != nil {
		return reasonFor(err)
	}

	tick := time.NewTicker(st.heartbeat)
	defer tick.Stop()
	var batch []*broker.Event
	active := false // something was written since the last tick
	for {
		select {
		case <-r.Context().Done():
			if context.Cause(r.Context()) == errTokenExpired {
				_ = st.write(w, rc, sub, st.farewell())
			}
			return reasonFor(nil)
		case <-tick.C:
			if !active {
				if err := st.write(w, rc, sub, sse.Heartbeat); err != nil {
					return reasonFor(err)
				}
			}
			active = false
		case <-sub.Ready():
			var err error
			batch, err = sub.Take(batch[:0])
			if len(batch) > 0 {
				werr := st.writeBatch(w, rc, sub, batch, tagged)
				clear(batch)
				if werr != nil {
					return reasonFor(werr)
				}
				active = true
			}
			if err != nil {
				// Ended by crier: the client should come back. A slow client's socket is
				// full, and waiting for it to take the farewell would hold its end up.
				if !errors.Is(err, broker.ErrSlow) {
					_ = st.write(w, rc, sub, st.farewell())
				}
				return reasonFor(err)
			}
		}
	}
}

// This path cannot tell a full connection from a slow write (an HTTP/2 client that grants
// no flow-control window blocks the flush until the write timeout): while a write is
// under way, the subscription counts as blocked, so that -buffer bounds what waits for
// the stream from its first byte on, and the broker never waits for it.

// writeBatch writes every event of batch and flushes once.
func (st *streamer) writeBatch(w http.ResponseWriter, rc *http.ResponseController, sub *broker.Subscription, batch []*broker.Event, tagged bool) error {
	sub.SetBlocked(true)
	defer sub.SetBlocked(false)
	st.deadline(rc)
	var tag []byte // a tagged event's topic line; its shared bytes follow, not copied
	for _, ev := range batch {
		if tag = sse.AppendTag(tag[:0], ev, tagged); len(tag) > 0 {
			if _, err := w.Write(tag); err != nil {
				return errWrite
			}
		}
		if _, err := w.Write(ev.Wire()); err != nil {
			return errWrite
		}
	}
	return st.flush(rc)
}

func (st *streamer) write(w http.ResponseWriter, rc *http.ResponseController, sub *broker.Subscription, b []byte) error {
	sub.SetBlocked(true)
	defer sub.SetBlocked(false)
	st.deadline(rc)
	if _, err := w.Write(b); err != nil {
		return errWrite
	}
	return st.flush(rc)
}

// flush sends what was written and lifts the write deadline until the next write.
func (st *streamer) flush(rc *http.ResponseController) error {
	if err := rc.Flush(); err != nil {
		return errWrite
	}
	// An idle stream must not time out: on HTTP/2 a pending deadline resets the stream
	// when it passes, even with no write under way (a -heartbeat longer than the write
	// timeout would end every stream).
	_ = rc.SetWriteDeadline(time.Time{})
	return nil
}

// deadline bounds the next write and flush, replacing the server's WriteTimeout, which a
// stream that lives for hours must not have.
func (st *streamer) deadline(rc *http.ResponseController) {
	_ = rc.SetWriteDeadline(time.Now().Add(st.writeTimeout))
}

var errWrite = errors.New("write to stream failed")
