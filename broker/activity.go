package broker

import "time"

// Activity is something that happened to one of this node's streams, for an observer
// such as the webhook sender.
type Activity struct {
	Kind       ActivityKind
	Subscriber string // the stream's subscriber id
	User       string // its user: the JWT's sub, or the subscriber id when anonymous
	Topic      string // the room, for ActivityJoin and ActivityLeave
	Time       time.Time
}

// ActivityKind says what an Activity is.
type ActivityKind string

// The kinds of Activity.
const (
	ActivityConnect    ActivityKind = "connect"
	ActivityDisconnect ActivityKind = "disconnect"
	ActivityJoin       ActivityKind = "join"
	ActivityLeave      ActivityKind = "leave"
)

// observeLocked tells Options.Observe, if set, that kind happened to s (topic: the room,
// for joins and leaves). Called with b.mu held, so that observers see activity in the
// order the broker registered it.
func (b *Broker) observeLocked(kind ActivityKind, s *Subscription, topic string) {
	if b.opts.Observe == nil {
		return
	}
	b.opts.Observe(Activity{Kind: kind, Subscriber: s.id, User: s.User(), Topic: topic, Time: b.opts.Now()})
}
