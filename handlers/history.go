package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/crierhq/crier/auth"
	"github.com/crierhq/crier/broker"
)

// Bounds of GET /history's limit parameter.
const (
	defaultHistoryLimit = 100
	maxHistoryLimit     = 1000
)

// historyHandler serves GET /history: the retained events of one topic after an id.
type historyHandler struct {
	broker Broker
	auth   *authorizer
	retry  time.Duration
}

// historyPage is GET /history's answer.
type historyPage struct {
	Topic  string         `json:"topic"`
	Events []historyEvent `json:"events"`
	Missed bool           `json:"missed"`
}

// historyEvent is one event as published: JSON data as JSON, plain text as a string.
type historyEvent struct {
	ID    string          `json:"id"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

func (h *historyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	topic, after, limit, err := parseHistoryQuery(r.URL.Query())
	if err != nil {
		writeErr(w, reject(http.StatusBadRequest, err.Error()))
		return
	}
	if err := h.auth.read(r, topic); err != nil {
		writeErr(w, err)
		return
	}
	page, err := h.broker.History(r.Context(), topic, after, limit)
	if err != nil {
		writeErr(w, brokerError(err, h.retry))
		return
	}
	out := historyPage{Topic: topic, Events: make([]historyEvent, len(page.Events)), Missed: page.Missed}
	for i, ev := range page.Events {
		data := json.RawMessage(ev.Data)
		if ev.Text || !json.Valid(data) {
			data, _ = json.Marshal(string(ev.Data)) // a string always marshals
		}
		out.Events[i] = historyEvent{ID: broker.FormatID(ev.ID), Event: ev.Name, Data: data}
	}
	writeJSON(w, out)
}

// parseHistoryQuery reads topic (required), after (an event id; 0 when absent) and
// limit (1 or more; default 100, and above 1000 counts as 1000).
func parseHistoryQuery(q url.Values) (topic string, after uint64, limit int, err error) {
	for name := range q {
		if len(q[name]) > 1 {
			return "", 0, 0, errors.New("give at most one " + name + " parameter")
		}
	}
	topic = q.Get("topic")
	if _, ok := q["topic"]; !ok {
		return "", 0, 0, errors.New("give a topic: /history?topic=NAME")
	}
	if err := auth.CheckTopic(topic); err != nil {
		return "", 0, 0, err
	}
	if s, ok := q["after"]; ok {
		if after, ok = broker.ParseID(s[0]); !ok {
			return "", 0, 0, errors.New("after must be an event id")
		}
	}
	limit = defaultHistoryLimit
	if s, ok := q["limit"]; ok {
		n, err := strconv.Atoi(s[0])
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange && s[0][0] != '-' {
			n, err = maxHistoryLimit, nil // a huge number is only larger than the cap
		}
		if err != nil || n < 1 {
			return "", 0, 0, errors.New("limit must be a positive whole number")
		}
		limit = min(n, maxHistoryLimit)
	}
	return topic, after, limit, nil
}
