package webhook_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crierhq/crier/internal/testenv"
	"github.com/crierhq/crier/webhook"
)

// pipeNet is an in-memory network: a real http.Server accepts the connections that a
// real http.Transport dials, over net.Pipe, so that a synctest bubble's clock can run
// through a backend's outage without the test waiting for it.
type pipeNet struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	down  atomic.Bool // dials are refused, as by a backend that is not running
}

func newPipeNet() *pipeNet { return &pipeNet{conns: make(chan net.Conn), done: make(chan struct{})} }

func (p *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

func (p *pipeNet) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

func (p *pipeNet) Addr() net.Addr { return pipeAddr{} }

func (p *pipeNet) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	if p.down.Load() {
		return nil, errors.New("connection refused")
	}
	client, server := net.Pipe()
	select {
	case p.conns <- server:
		return client, nil
	case <-p.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// The backend is down for 10 s while events keep coming: Observe never waits, and once
// the backend is back every event within the queue's bound arrives, in order, once.
func TestOutageLosesNothingWithinTheBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const queue, perSecond, outage = 1000, 100, 10
		pn := newPipeNet()
		rc := testenv.NewWebhook(t, secret, nil)
		srv := &http.Server{Handler: rc}
		go func() { _ = srv.Serve(pn) }()
		tr := &http.Transport{DialContext: pn.dial}
		reg := prometheus.NewRegistry()
		s, err := webhook.New(webhook.Options{URL: "http://backend/hook", Secret: secret, Queue: queue,
			Client: &http.Client{Transport: tr}, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}

		pn.down.Store(true)
		for sec := range outage {
			before := time.Now()
			for i := range perSecond {
				s.Observe(activity(sec*perSecond + i))
			}
			if waited := time.Since(before); waited != 0 {
				t.Errorf("Observe waited %s for a backend that is down", waited)
			}
			time.Sleep(time.Second)
		}
		if failed := metric(t, reg, "crier_webhook_batches_failed_total"); failed < 2 {
			t.Errorf("%v failed attempts in %d s of outage, want retries", failed, outage)
		}
		pn.down.Store(false)

		got := rc.Collect(t, queue)
		for i, g := range got {
			if g.Subscriber != activity(i).Subscriber {
				t.Fatalf("event %d: %+v, want subscriber %s", i, g, activity(i).Subscriber)
			}
		}
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
		select {
		case b := <-rc.Batches:
			t.Errorf("%d events more than were observed: %+v", len(b), b[0])
		default:
		}
		if dropped := metric(t, reg, "crier_webhook_dropped_total"); dropped != 0 {
			t.Errorf("dropped %v within the bound", dropped)
		}
		// Everything the bubble started must end: synctest fails on a leaked goroutine.
		_ = srv.Close()
		tr.CloseIdleConnections()
	})
}
