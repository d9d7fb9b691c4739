package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/crierhq/crier/broker"
)

// errorBody is every error response: {"error": "<one sentence>"}.
type errorBody struct {
	Error string `json:"error"`
}

// httpError is an error with the answer it deserves: a status, a message meant for the
// client, and the headers that go with it.
type httpError struct {
	status     int
	msg        string
	challenge  string // WWW-Authenticate; "": none
	retryAfter int    // Retry-After in seconds; 0: none
}

func (e *httpError) Error() string { return e.msg }

// reject is an answer with status and msg and no special headers.
func reject(status int, msg string) error { return &httpError{status: status, msg: msg} }

// writeErr answers err: an *httpError (wrapped or not) with its status, its headers and
// {"error": msg}; anything else with a 500 that reveals nothing. It is the one place
// where errors become HTTP.
func writeErr(w http.ResponseWriter, err error) {
	var e *httpError
	if !errors.As(err, &e) {
		e = &httpError{status: http.StatusInternalServerError, msg: "internal error"}
	}
	h := w.Header()
	if e.challenge != "" {
		h.Set("WWW-Authenticate", e.challenge)
	}
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	encodeJSON(w, errorBody{Error: e.msg})
}

// writeJSON answers 200 with v.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	encodeJSON(w, v)
}

func encodeJSON(w http.ResponseWriter, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // JSON for programs, not for embedding in HTML
	_ = enc.Encode(v)
}

// brokerError maps an error from the broker (or a cross-node broker) to its answer, with
// a message that reveals nothing internal; a 503 asks the client to come back after retry.
func brokerError(err error, retry time.Duration) error {
	if errors.Is(err, broker.ErrKeyConflict) {
		return reject(http.StatusUnprocessableEntity,
			"the Idempotency-Key was used for a different event; give each event its own key")
	}
	msg := "the service is unavailable; retry later"
	switch {
	case errors.Is(err, broker.ErrFull):
		msg = "too many open streams; retry later"
	case errors.Is(err, broker.ErrClosed):
		msg = "the server is shutting down; retry later"
	case errors.Is(err, broker.ErrBusy):
		msg = "the server is behind delivering events and did not accept this one; retry later"
	}
	return &httpError{status: http.StatusServiceUnavailable, msg: msg, retryAfter: retrySeconds(retry)}
}
