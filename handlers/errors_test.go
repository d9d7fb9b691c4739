package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
)

// TestWriteErr: every kind of error gets its status, its headers and a JSON body, and an
// error of no known kind reveals nothing.
func TestWriteErr(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		status    int
		msg       string
		challenge string
		retry     string
	}{
		{"bad request", reject(http.StatusBadRequest, "bad topic"), 400, "bad topic", "", ""},
		{"no token", needToken("p"), 401, needToken("p").Error(), realm, ""},
		{"not granted", notGranted("no"), 403, "no", realm + `, error="insufficient_scope"`, ""},
		{"wrapped", fmt.Errorf("reading: %w", reject(http.StatusRequestEntityTooLarge, "too big")), 413, "too big", "", ""},
		{"per-address cap", tooManyStreams(3, 2500*time.Millisecond), 429, tooManyStreams(3, 0).Error(), "", "3"},
		{"broker full", brokerError(broker.ErrFull, time.Second), 503, "too many open streams; retry later", "", "1"},
		{"broker closed", brokerError(fmt.Errorf("subscribe: %w", broker.ErrClosed), 3*time.Second), 503, "the server is shutting down; retry later", "", "3"},
		{"key conflict", brokerError(broker.ErrKeyConflict, time.Second), 422, brokerError(broker.ErrKeyConflict, 0).Error(), "", ""},
		{"unknown", errors.New("redis: 10.0.0.7:6379 refused"), 500, "internal error", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			writeErr(rec, tc.err)
			var body errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			h := rec.Header()
			if rec.Code != tc.status || body.Error != tc.msg || h.Get("Content-Type") != "application/json" ||
				h.Get("WWW-Authenticate") != tc.challenge || h.Get("Retry-After") != tc.retry {
				t.Errorf("got %d %q, WWW-Authenticate %q, Retry-After %q, Content-Type %q; want %d %q, %q, %q",
					rec.Code, body.Error, h.Get("WWW-Authenticate"), h.Get("Retry-After"), h.Get("Content-Type"),
					tc.status, tc.msg, tc.challenge, tc.retry)
			}
		})
	}
}
