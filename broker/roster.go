package broker

// roster is a set of subscriptions kept in a stable order, the order they joined in
// (but for the one moved into a leaver's place). The fan-out visits subscribers in this
// order, event after event, so that the stream writers, which serve streams in the order
// they were woken, write them in the same order pass after pass: every stream then waits
// one pass between writes, not one pass give or take the shuffle of a map's iteration.
type roster struct {
	subs []*Subscription
	pos  map[*Subscription]int
}

func (r *roster) add(s *Subscription) {
	if _, ok := r.pos[s]; ok {
		return
	}
	if r.pos == nil {
		r.pos = make(map[*Subscription]int)
	}
	r.pos[s] = len(r.subs)
	r.subs = append(r.subs, s)
}

func (r *roster) remove(s *Subscription) {
	i, ok := r.pos[s]
	if !ok {
		return
	}
	last := len(r.subs) - 1
	r.subs[i] = r.subs[last]
	r.pos[r.subs[i]] = i
	r.subs[last] = nil
	r.subs = r.subs[:last]
	delete(r.pos, s)
}

func (r *roster) len() int { return len(r.subs) }
