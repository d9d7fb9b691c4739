package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/crierhq/crier/broker"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the request body, keyed
// with Options.Secret.
const SignatureHeader = "X-Crier-Signature"

// event is one activity as the backend receives it.
type event struct {
	Type       string `json:"type"`
	Subscriber string `json:"subscriber"`
	User       string `json:"user"`
	Topic      string `json:"topic,omitempty"` // rooms only
	Time       string `json:"time"`
}

// timeLayout is RFC 3339 with microseconds, which every common parser reads (some
// stop at six digits), so that a backend can order one user's connects and disconnects.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// encode renders a batch as the request body. It runs on the sender's goroutine, so that
// Observe, under the broker's lock, only copies the activity.
func encode(batch []broker.Activity) []byte {
	events := make([]event, len(batch))
	for i, a := range batch {
		events[i] = event{Type: string(a.Kind), Subscriber: a.Subscriber, User: a.User, Topic: a.Topic,
			Time: a.Time.UTC().Format(timeLayout)}
	}
	body, _ := json.Marshal(struct { // strings only: it cannot fail
		Events []event `json:"events"`
	}{events})
	return body
}

// sign returns the X-Crier-Signature value of body.
func sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// deliver sends batch until the backend answers 2xx, waiting a growing backoff between
// attempts. It reports false when Close gave up first.
func (s *Sender) deliver(batch []broker.Activity) bool {
	body := encode(batch)
	sig := sign(s.opts.Secret, body)
	for failures := 0; ; failures++ {
		err := s.post(body, sig)
		if err == nil {
			s.m.sent.Inc()
			s.m.events.Add(float64(len(batch)))
			if failures > 0 {
				s.log.Info("webhook backend answers again", "failed_attempts", failures)
			}
			return true
		}
		if s.abort.Err() != nil {
			return false
		}
		s.m.failed.Inc()
		// One line per outage, not per attempt: the end of it is logged above.
		level := slog.LevelDebug
		if failures == 0 {
			level = slog.LevelWarn
		}
		s.log.Log(context.Background(), level, "webhook request failed; retrying with backoff",
			"err", err, "events", len(batch), "failed_attempts", failures+1)
		if !s.wait(s.backoff(failures)) {
			return false
		}
	}
}

// post makes one attempt at delivering body.
func (s *Sender) post(body []byte, sig string) error {
	req, err := http.NewRequestWithContext(s.abort, http.MethodPost, s.opts.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, sig)
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a key
		}
		return fmt.Errorf("webhook: post: %w", err)
	}
	// Reading a little of the body lets the connection be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook: the backend answered %s", resp.Status)
	}
	return nil
}

// backoff is the wait after the failures+1st failed attempt at one batch: MinBackoff
// doubled per earlier failure, at most MaxBackoff, of which a random half is taken off
// so that the nodes of a cluster do not retry in step.
func (s *Sender) backoff(failures int) time.Duration {
	d := s.opts.MinBackoff
	for i := 0; i < failures && d < s.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.opts.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// wait sleeps for d; it reports false when Close gave up meanwhile.
func (s *Sender) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case <-s.overflow:
			s.warnOverflow()
		case <-s.abort.Done():
			return false
		}
	}
}
