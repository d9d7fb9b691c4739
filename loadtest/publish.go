package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// publisher posts events over one keep-alive connection, one request at a time, and
// reconnects when the server closes it. Owned by one goroutine.
type publisher struct {
	c     *client
	idx   int
	topic string

	conn net.Conn
	br   bodyReader
	req  []byte
	body []byte
}

// post sends one POST /publish with a JSON body and returns the status and the
// response body, which is valid until the next call.
func (pb *publisher) post(body []byte) (int, []byte, error) {
	if pb.conn == nil {
		conn, err := pb.c.dial(context.Background())
		if err != nil {
			return 0, nil, err
		}
		pb.conn = conn
		pb.br.reset(conn, 1024, 1<<20)
	}
	pb.req = fmt.Appendf(pb.req[:0], "POST /publish HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		pb.c.hostport, pb.c.token, len(body))
	pb.req = append(pb.req, body...)
	status, resp, err := pb.roundTrip()
	if err != nil {
		pb.close()
	}
	return status, resp, err
}

func (pb *publisher) roundTrip() (int, []byte, error) {
	pb.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := pb.conn.Write(pb.req); err != nil {
		return 0, nil, err
	}
	h, err := readHeader(&pb.br)
	if err != nil {
		return 0, nil, err
	}
	mode, n := h.bodyMode()
	if err := pb.br.setBody(mode, n); err != nil {
		return 0, nil, err
	}
	resp, err := pb.br.readAll()
	if err != nil {
		return 0, nil, err
	}
	if h.close || mode == modeRaw {
		pb.close()
	} else if err := pb.br.nextResponse(); err != nil {
		return 0, nil, err
	}
	return h.status, resp, nil
}

func (pb *publisher) close() {
	if pb.conn != nil {
		pb.conn.Close()
		pb.conn = nil
	}
}

// publishLoad sends load events for the phase with n publishers for d: at rate events
// per second in total, or back to back when rate is 0 (held back by the phase's window,
// if it has one). Each publisher numbers its accepted publishes 0, 1, 2 ...; a failed or
// refused one is tried again with the same number. In an open-loop phase (ph.open) a
// publisher keeps to its schedule whatever the server answers: a refused publish is not
// retried early, and the publishes that fell due while it still waited for an answer
// are counted as unsent and skipped, so that a server that slows its publishers down
// cannot lower the offered rate unseen.
func publishLoad(ctx context.Context, c *client, ph *phase, n int, rate float64, d time.Duration, size int, topic string) {
	start := time.Now()
	ph.pubStart.Store(start.UnixNano())
	end := start.Add(d)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			pb := &publisher{c: c, idx: i, topic: topic}
			defer pb.close()
			var interval time.Duration
			if rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(n) / rate)
			}
			offset := interval * time.Duration(i) / time.Duration(n)
			timer := time.NewTimer(time.Hour)
			timer.Stop()
			var seq int64
			for k := 0; ctx.Err() == nil; k++ {
				// A server slower than the rate makes the publisher fall behind its
				// schedule; it still stops at the end of the duration, and the
				// result reports the rate it reached.
				if !time.Now().Before(end) {
					return
				}
				if interval > 0 {
					next := start.Add(offset + interval*time.Duration(k))
					if ph.open {
						if late := int(time.Since(next) / interval); late > 0 {
							// Due while the last publish waited: skip them, counted.
							late = min(late, int(end.Sub(next)/interval)+1)
							ph.offered.Add(int64(late))
							ph.unsent.Add(int64(late))
							k += late
							next = start.Add(offset + interval*time.Duration(k))
						}
					}
					if !next.Before(end) {
						return
					}
					if w := time.Until(next); w > 0 && !sleepCtx(ctx, w) {
						return
					}
				}
				if ph.win != nil {
					ph.win.wait(ctx, int64(i), seq, timer)
				}
				ph.offered.Add(1)
				switch pb.publishOne(ph, seq, size) {
				case publishAccepted:
					seq++
				case publishRefused:
					if ph.open {
						continue
					}
					fallthrough
				default:
					if !sleepCtx(ctx, 10*time.Millisecond) {
						return
					}
				}
			}
		})
	}
	wg.Wait()
	ph.pubEnd.Store(time.Now().UnixNano())
}

// publishOutcome is what became of one publish.
type publishOutcome int

const (
	publishAccepted publishOutcome = iota // 200
	publishRefused                        // 503: the server is behind or unavailable
	publishFailed                         // anything else
)

// publishOne posts sequence number seq and records the outcome.
func (pb *publisher) publishOne(ph *phase, seq int64, size int) publishOutcome {
	t0 := time.Now()
	pb.body = append(pb.body[:0], `{"event":"`+loadEvent+`",`...)
	if pb.topic != "" {
		pb.body = append(pb.body, `"topic":`...)
		pb.body = strconv.AppendQuote(pb.body, pb.topic)
		pb.body = append(pb.body, ',')
	}
	pb.body = append(pb.body, `"data":`...)
	pb.body = appendData(pb.body, payload{gen: ph.gen, pub: int64(pb.idx), seq: seq, ts: t0.UnixNano()}, size)
	pb.body = append(pb.body, '}')
	status, resp, err := pb.post(pb.body)
	ph.pubLat.record(pb.idx, time.Since(t0).Nanoseconds())
	switch {
	case err != nil:
		ph.pubError(err.Error())
		return publishFailed
	case status == 503:
		ph.refused.Add(1)
		return publishRefused
	case status != 200:
		ph.pubError(fmt.Sprintf("status %d: %s", status, truncate(resp)))
		return publishFailed
	}
	ph.published.Add(1)
	return publishAccepted
}
