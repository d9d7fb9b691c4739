package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/crierhq/crier/broker"
)

// eventsHandler serves GET /events: it checks the request, subscribes, and hands the
// subscription to the streamer.
type eventsHandler struct {
	broker Broker
	auth   *authorizer
	log    *slog.Logger
	retry  time.Duration
	stream streamer
}

func (h *eventsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	topics, err := parseTopics(q["topic"])
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	expires, err := h.auth.stream(r, topics)
	var refused *authError
	if errors.As(err, &refused) {
		writeAuthError(w, refused)
		return
	}
	req := broker.Request{Topics: topics}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		req.Resume, req.LastEventID = true, id
	} else if ids, ok := q["lastEventId"]; ok && len(ids) > 0 {
		req.Resume, req.LastEventID = true, ids[0]
	}
	sub, err := h.broker.Subscribe(req)
	if err != nil {
		writeBrokerError(w, err, retrySeconds(h.retry))
		return
	}
	defer sub.Close()

	start := time.Now()
	log := h.log.With("subscriber", sub.ID(), "remote", r.RemoteAddr,
		"topics", strings.Join(topics, ","), "request_id", middleware.GetReqID(r.Context()))
	if !expires.IsZero() {
		log = log.With("token_expires", expires.UTC().Format(time.RFC3339))
	}
	log.Info("stream opened", "resume", req.LastEventID)
	r, release := untilExpiry(r, expires)
	defer release()
	why := h.stream.serve(w, r, sub)
	if context.Cause(r.Context()) == errTokenExpired {
		why = "token expired"
	}
	log.Info("stream closed", "reason", why, "events", sub.Sent(), "duration", time.Since(start).Round(time.Millisecond))
}

// closeReason describes in words why a stream ended, for the log.
func closeReason(err error) string {
	switch {
	case errors.Is(err, broker.ErrSlow):
		return "fell behind"
	case errors.Is(err, broker.ErrClosed):
		return "server shutting down"
	case errors.Is(err, broker.ErrEnded):
		return "subscription ended"
	case err == nil:
		return "client went away"
	}
	return "write failed"
}
