package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers/hub"
)

// eventsHandler serves GET /events: it checks the request, subscribes, and hands the
// subscription to the streamer.
type eventsHandler struct {
	broker Broker
	auth   *authorizer
	log    *slog.Logger
	retry  time.Duration
	stream streamer
	hub    *hub.Hub               // nil: every stream on the plain path
	closes *prometheus.CounterVec // by closeReason label
	// perAddr caps the streams of one client address.
	perAddr *addrLimiter
}

func (h *eventsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	topics, err := parseTopics(q["topic"])
	if err != nil {
		writeErr(w, reject(http.StatusBadRequest, err.Error()))
		return
	}
	user, expires, err := h.auth.stream(r, topics)
	if err != nil { // a refusal, or anything else: no stream either way
		writeErr(w, err)
		return
	}
	leave, ok := h.perAddr.acquire(r)
	if !ok {
		writeErr(w, tooManyStreams(h.perAddr.max, h.retry))
		return
	}
	handedOver := false // to the hub, which calls finish (and so leave) when the stream ends
	defer func() {
		if !handedOver {
			leave()
		}
	}()
	req := broker.Request{Topics: topics, User: user}
	// tagged=1 names each event's topic on the wire, for clients that share one stream.
	tagged, _ := strconv.ParseBool(q.Get("tagged"))
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		req.Resume, req.LastEventID = true, id
	} else if ids, ok := q["lastEventId"]; ok && len(ids) > 0 {
		req.Resume, req.LastEventID = true, ids[0]
	}
	if h.hub != nil && h.hub.Pace(r.Context()) != nil {
		return // the client left while waiting
	}
	sub, err := h.broker.Subscribe(req)
	if err != nil {
		writeErr(w, brokerError(err, h.retry))
		return
	}

	start := time.Now()
	log := h.log.With("subscriber", sub.ID(), "remote", r.RemoteAddr,
		"topics", strings.Join(topics, ","), "request_id", middleware.GetReqID(r.Context()))
	if !expires.IsZero() {
		log = log.With("token_expires", expires.UTC().Format(time.RFC3339))
	}
	log.Info("stream opened", "resume", req.LastEventID)
	finish := func(why closeReason) {
		sub.Close()
		leave()
		h.closes.WithLabelValues(why.label()).Inc()
		log.Info("stream closed", "reason", why.String(), "events", sub.Sent(),
			"duration", time.Since(start).Round(time.Millisecond).String())
	}
	if h.hub != nil && h.hub.Adopt(w, r, hub.Stream{Sub: sub, Opening: h.stream.opening, Heartbeat: h.stream.heartbeat,
		WriteTimeout: h.stream.writeTimeout, Expires: expires, Tagged: tagged, Farewell: h.stream.farewell,
		Done: func(err error) { finish(reasonFor(err)) }}) {
		handedOver = true
		return
	}
	defer sub.Close()
	r, release := untilExpiry(r, expires)
	defer release()
	why := h.stream.stream(w, r, sub, tagged)
	if context.Cause(r.Context()) == errTokenExpired {
		why = closedTokenExpired
	}
	finish(why)
}

// closeReason is why a stream ended: a metric label and words for the log.
type closeReason int

const (
	closedByClient     closeReason = iota // the client went away
	closedSlow                            // it fell -buffer events behind and was cut off
	closedShutdown                        // the server is shutting down
	closedEnded                           // the subscription was ended by the broker
	closedWriteFailed                     // a write or flush failed or timed out
	closedTokenExpired                    // the token that allowed private topics expired
	numCloseReasons
)

var closeReasonNames = [numCloseReasons]struct{ label, text string }{
	closedByClient:     {"client", "client went away"},
	closedSlow:         {"slow", "fell behind"},
	closedShutdown:     {"shutdown", "server shutting down"},
	closedEnded:        {"ended", "subscription ended"},
	closedWriteFailed:  {"write_failed", "write failed"},
	closedTokenExpired: {"token_expired", "token expired"},
}

func (r closeReason) label() string  { return closeReasonNames[r].label }
func (r closeReason) String() string { return closeReasonNames[r].text }

// reasonFor maps what ended a stream to a closeReason; nil means the client left.
func reasonFor(err error) closeReason {
	switch {
	case err == nil, errors.Is(err, hub.ErrHungUp):
		return closedByClient
	case errors.Is(err, hub.ErrExpired):
		return closedTokenExpired
	case errors.Is(err, broker.ErrSlow):
		return closedSlow
	case errors.Is(err, broker.ErrClosed), errors.Is(err, hub.ErrClosed):
		return closedShutdown
	case errors.Is(err, broker.ErrEnded):
		return closedEnded
	}
	return closedWriteFailed
}
