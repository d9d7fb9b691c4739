package testenv

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// WebhookEvent is one event of a webhook request as a backend reads it; Topic is a
// pointer to tell a missing field from an empty one.
type WebhookEvent struct {
	Type       string  `json:"type"`
	Subscriber string  `json:"subscriber"`
	User       string  `json:"user"`
	Topic      *string `json:"topic"`
	Time       string  `json:"time"`
}

// Webhook is a backend for crier's webhooks. It checks every request's signature with an
// HMAC of its own (not crier's code), its method, type and JSON, answers Status(n) to the
// n-th request (nil: 204 to all), and hands the events of each 2xx answer to Batches.
type Webhook struct {
	Batches chan []WebhookEvent

	t      testing.TB
	secret []byte
	status func(n int) int

	mu       sync.Mutex
	requests int
	bodies   [][]byte // of the 2xx answers
	sigs     []string
}

// NewWebhook returns a backend that expects requests signed with secret. Serve it with
// Start, or on a server of the test's own.
func NewWebhook(t testing.TB, secret []byte, status func(n int) int) *Webhook {
	return &Webhook{t: t, secret: secret, status: status, Batches: make(chan []WebhookEvent, 1000)}
}

// Start serves w on a real HTTP server on loopback until the test ends, and returns its URL.
func (w *Webhook) Start() string {
	srv := httptest.NewServer(w)
	w.t.Cleanup(srv.Close)
	return srv.URL
}

func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	mac := hmac.New(sha256.New, w.secret)
	mac.Write(body)
	sig := r.Header.Get("X-Crier-Signature")
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); sig != want {
		w.t.Errorf("X-Crier-Signature %q, want %q for %s", sig, want, body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" || r.Method != http.MethodPost {
		w.t.Errorf("%s with Content-Type %q, want a POST of application/json", r.Method, ct)
	}
	var msg struct{ Events []WebhookEvent }
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&msg); err != nil || len(msg.Events) == 0 {
		w.t.Errorf("webhook body %s: %v", body, err)
	}
	w.mu.Lock()
	n := w.requests
	w.requests++
	w.mu.Unlock()
	code := http.StatusNoContent
	if w.status != nil {
		code = w.status(n)
	}
	if code/100 == 2 {
		w.mu.Lock()
		w.bodies = append(w.bodies, body)
		w.sigs = append(w.sigs, sig)
		w.mu.Unlock()
		w.Batches <- msg.Events
	}
	rw.WriteHeader(code)
}

// Collect reads batches until n events have come, for at most a minute.
func (w *Webhook) Collect(t testing.TB, n int) []WebhookEvent {
	t.Helper()
	var got []WebhookEvent
	timeout := time.After(time.Minute)
	for len(got) < n {
		select {
		case b := <-w.Batches:
			got = append(got, b...)
		case <-timeout:
			t.Fatalf("after a minute, %d of %d webhook events: %+v", len(got), n, got)
		}
	}
	return got
}

// Accepted returns the bodies answered 2xx so far and their signature headers.
func (w *Webhook) Accepted() (bodies [][]byte, sigs []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.bodies...), append([]string(nil), w.sigs...)
}
