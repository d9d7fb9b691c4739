package handlers

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/crierhq/crier/auth"
	"github.com/crierhq/crier/broker"
)

// maxRoomUsers bounds the users one GET /presence lists: a room of 100,000 members
// answers with its count and 10,000 of them (about 400 KB), marked truncated.
const maxRoomUsers = 10000

// presenceHandler serves GET /presence?topic=T[&limit=N]: who is in a room now.
type presenceHandler struct {
	broker Broker
	auth   *authorizer
	retry  time.Duration
}

// presenceBody is the answer: the contract's fields, and truncated when users lists
// fewer than members.
type presenceBody struct {
	Topic     string         `json:"topic"`
	Members   int            `json:"members"`
	Users     []presenceUser `json:"users"`
	Truncated bool           `json:"truncated"`
}

type presenceUser struct {
	User        string `json:"user"`
	Connections int    `json:"connections"`
}

func (h *presenceHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	topic := q.Get("topic")
	if err := auth.CheckTopic(topic); err != nil {
		writeErr(w, reject(http.StatusBadRequest, err.Error()))
		return
	}
	limit := maxRoomUsers
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeErr(w, reject(http.StatusBadRequest, "limit must be a positive integer"))
			return
		}
		limit = min(n, maxRoomUsers)
	}
	if err := h.auth.read(r, topic); err != nil {
		writeErr(w, err)
		return
	}
	room, err := h.broker.Room(r.Context(), topic, limit)
	switch {
	case errors.Is(err, broker.ErrNotRoom):
		writeErr(w, reject(http.StatusNotFound, "the topic "+strconv.Quote(topic)+" is not a room (see -presence-topics)"))
		return
	case err != nil:
		writeErr(w, brokerError(err, h.retry))
		return
	}
	body := presenceBody{Topic: room.Topic, Members: room.Members, Users: make([]presenceUser, len(room.Users))}
	for i, u := range room.Users {
		body.Users[i] = presenceUser{User: u.User, Connections: u.Connections}
	}
	body.Truncated = len(body.Users) < body.Members
	writeJSON(w, body)
}
