package broker

import "time"

// clock hands out event ids: microseconds since the Unix epoch, bumped by one when the wall
// clock has not moved on. Ids so derived keep increasing across restarts of the process
// (as long as the wall clock does not step back further than the downtime), and they have
// sixteen digits until the year 2286, so they sort the same as numbers and as strings.
// Not safe for concurrent use: the broker calls it under its lock.
type clock struct {
	now  func() time.Time
	last uint64
}

func (c *clock) next() (uint64, time.Time) {
	t := c.now()
	id := uint64(t.UnixMicro())
	if id <= c.last {
		id = c.last + 1
	}
	c.last = id
	return id, t
}
