package broker

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// Rooms are presence per topic. A topic for which Options.Rooms says yes is a room: its
// followers hear a join when a user's first stream in the room opens (that stream
// included) and a leave when the user's last one ends. A user is a Request.User, or, for
// an anonymous stream, its subscriber id; so three tabs of one person are one member with
// three connections, announced once.
//
// A room is a map from user to connections, so a join or a leave costs the same in a
// room of ten thousand members as in a room of two: the count is the map's length. Room
// events are topical, so the dispatcher hands them only to the room's followers, and
// they are not retained: like new_user, they say who is here now.
//
// With a Bus, the cluster keeps the rooms: the broker tells it, per user and room, how
// many streams this node holds (an absolute number, so that telling twice does no harm),
// and the join or leave comes back through the log, in the cluster's order. A stream
// that arrives hears the room's events from the point in the log where its arrival took
// effect (RoomBus.Occupy's mark), not those this node had not read yet when it arrived.

// Room is who is in a room.
type Room struct {
	Topic   string
	Members int        // users in the room
	Users   []RoomUser // at most the limit asked for, by user; all of them when Members is no more
}

// RoomUser is one member of a room.
type RoomUser struct {
	User        string
	Connections int // the user's streams in the room
}

// Occupant is one user's streams in one room on this node.
type Occupant struct {
	Topic, User string
	Connections int
}

// RoomBus is what a Bus does for rooms.
type RoomBus interface {
	// Occupy tells the cluster that user now has n streams (0: none any more) in the room
	// topic on this node. When that makes the user's first stream in the cluster, the log
	// carries a join; when it removes the last, a leave. It is called with the Broker's
	// lock held, so it must not block.
	//
	// It returns a mark, greater than any it returned before. The log carries marks (Mark,
	// Event.WithMark) in increasing order, each at a point where every room event before
	// it is older than the Occupy calls it covers (those that returned it or less) and
	// every one after it newer: a stream that arrives in a room hears what happens there
	// from its own arrival on, even though this node may not have read the log up to
	// where it arrived yet.
	Occupy(topic, user string, n int) (mark uint64)
	// Room returns who is in the room topic across the cluster, at most limit users.
	Room(ctx context.Context, topic string, limit int) (Room, error)
}

// enterRoomsLocked makes s a connection of its user in every room it follows.
func (b *Broker) enterRoomsLocked(s *Subscription) {
	if b.opts.Rooms == nil {
		return
	}
	user := s.User()
	for _, t := range s.topics {
		if !b.opts.Rooms(t) {
			continue
		}
		s.rooms = append(s.rooms, t)
		users := b.rooms[t]
		if users == nil {
			users = make(map[string]int)
			b.rooms[t] = users
		}
		users[user]++
		n := users[user]
		b.observeLocked(ActivityJoin, s, t)
		switch {
		case b.opts.Bus != nil:
			s.marks = append(s.marks, roomMark{topic: t, mark: b.opts.Bus.Occupy(t, user, n)})
		case n == 1:
			b.roomEventLocked(NameJoin, t, user, len(users), 1)
		}
	}
}

// roomMark is the mark of a subscription's arrival in a room through a Bus: the room's
// events before the log reaches it are from before the subscription was there.
type roomMark struct {
	topic string
	mark  uint64
}

// exitRoomsLocked takes s out of the rooms it was in.
func (b *Broker) exitRoomsLocked(s *Subscription) {
	user := s.User()
	for _, t := range s.rooms {
		users := b.rooms[t]
		users[user]--
		n := users[user]
		if n <= 0 {
			delete(users, user)
			if len(users) == 0 {
				delete(b.rooms, t)
			}
		}
		b.observeLocked(ActivityLeave, s, t)
		switch {
		case b.opts.Bus != nil:
			b.opts.Bus.Occupy(t, user, n)
		case n == 0:
			b.roomEventLocked(NameLeave, t, user, len(users), 0)
		}
	}
	s.rooms = nil
}

// observeRoomsLeftLocked tells the observer that s left its rooms, when the broker closes:
// nobody is told with events then, since everyone is leaving.
func (b *Broker) observeRoomsLeftLocked(s *Subscription) {
	for _, t := range s.rooms {
		b.observeLocked(ActivityLeave, s, t)
	}
}

// roomEventLocked sends a join or leave to the room's followers.
func (b *Broker) roomEventLocked(name, topic, user string, members, connections int) {
	id, t := b.clock.next()
	ev := RoomEvent(id, t, name, topic, user, members, connections)
	ev.wire = b.encode(ev)
	b.stats.presence.Add(1)
	b.enqueueLocked(step{ev: ev})
}

// RoomEvent makes the join (name NameJoin) or leave (NameLeave) event about user in the
// room topic, which has members users after it; connections are the user's streams in
// the room.
func RoomEvent(id uint64, t time.Time, name, topic, user string, members, connections int) *Event {
	return &Event{ID: id, Topic: topic, Name: name, Time: t, Data: roomData(topic, user, members, connections, t)}
}

// roomData renders a room event's JSON payload, fields in the contract's order.
func roomData(topic, user string, members, connections int, t time.Time) []byte {
	b := make([]byte, 0, 96+len(topic)+len(user))
	b = append(b, `{"topic":`...)
	b = appendJSONString(b, topic)
	b = append(b, `,"user":`...)
	b = appendJSONString(b, user)
	b = append(b, `,"members":`...)
	b = strconv.AppendInt(b, int64(members), 10)
	b = append(b, `,"connections":`...)
	b = strconv.AppendInt(b, int64(connections), 10)
	b = append(b, `,"time":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339)
	return append(b, `"}`...)
}

// appendJSONString appends s as a JSON string: users and topics may hold anything.
func appendJSONString(b []byte, s string) []byte {
	quoted, _ := json.Marshal(s) // a string always marshals
	return append(b, quoted...)
}

// Room returns who is in the room topic: at most limit users (limit <= 0: none, only the
// count), sorted by user. With a Bus it covers the cluster. It returns ErrNotRoom when
// topic is not a room.
func (b *Broker) Room(ctx context.Context, topic string, limit int) (Room, error) {
	if b.opts.Rooms == nil || !b.opts.Rooms(topic) {
		return Room{}, ErrNotRoom
	}
	if b.opts.Bus != nil {
		return b.opts.Bus.Room(ctx, topic, limit)
	}
	b.mu.Lock()
	users := b.rooms[topic]
	r := Room{Topic: topic, Members: len(users), Users: make([]RoomUser, 0, min(len(users), max(limit, 0)))}
	for u, n := range users {
		if len(r.Users) >= limit {
			break
		}
		r.Users = append(r.Users, RoomUser{User: u, Connections: n})
	}
	b.mu.Unlock()
	SortRoomUsers(r.Users)
	return r, nil
}

// SortRoomUsers puts users in the order Room lists them.
func SortRoomUsers(users []RoomUser) {
	slices.SortFunc(users, func(x, y RoomUser) int { return cmp.Compare(x.User, y.User) })
}

// Occupants returns this node's streams in rooms, per user and room, for a Bus that must
// tell the cluster again who is here (after Redis lost its state, say). While, when not
// nil, is called with the broker's lock held, once the snapshot is taken: a Bus takes the
// RoomBus.Occupy calls it has not sent yet there, knowing that the snapshot counts them
// and that none comes between.
func (b *Broker) Occupants(while func()) []Occupant {
	b.mu.Lock()
	defer b.mu.Unlock()
	var occ []Occupant
	for t, users := range b.rooms {
		for u, n := range users {
			occ = append(occ, Occupant{Topic: t, User: u, Connections: n})
		}
	}
	if while != nil {
		while()
	}
	return occ
}
