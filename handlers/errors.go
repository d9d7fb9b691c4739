package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/crierhq/crier/broker"
)

// errorBody is every error response: {"error": "<one sentence>"}.
type errorBody struct {
	Error string `json:"error"`
}

// writeError answers with status and a JSON message meant for the client.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	encodeJSON(w, errorBody{Error: msg})
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

// writeBrokerError maps an error from the broker (or a cross-node broker) to a status
// and a message that reveals nothing internal.
func writeBrokerError(w http.ResponseWriter, err error, retry int) {
	if errors.Is(err, broker.ErrKeyConflict) {
		writeError(w, http.StatusUnprocessableEntity,
			"the Idempotency-Key was used for a different event; give each event its own key")
		return
	}
	msg := "the service is unavailable; retry later"
	switch {
	case errors.Is(err, broker.ErrFull):
		msg = "too many open streams; retry later"
	case errors.Is(err, broker.ErrClosed):
		msg = "the server is shutting down; retry later"
	}
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	writeError(w, http.StatusServiceUnavailable, msg)
}
