// Package redisbus makes crier nodes one service through Redis: it is the broker.Bus
// whose shared log is a Redis stream. It is the only package that imports the Redis
// client.
//
// Publishing on any node runs a Lua script, for all the publishes that arrived together,
// that checks each idempotency key, numbers the event (Redis' clock in microseconds,
// bumped past the newest id), appends it to the live log and to its topic's history, and
// trims history, all in one step. Every node reads the log in order and hands each event
// to its broker, which fans it out to the streams it holds. Presence changes are
// appended to the same log, never to history, so every stream of every node sees one
// order; cluster counts come from per-node member sets that die with their node. Resume
// and GET /history read the topics' histories in pages, outside any script.
package redisbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crierhq/crier/broker"
)

// ErrUnreachable is returned by Ready while Redis cannot be reached.
var ErrUnreachable = errors.New("redisbus: redis is unreachable")

// Options configure a Bus. Zero fields take the defaults noted.
type Options struct {
	// URL is redis://[user:password@]host:port/db or rediss:// for TLS. Required.
	URL string
	// Prefix starts the name of every key the bus uses; default "crier:". Clusters that
	// share one Redis database need different prefixes.
	Prefix string
	// History, HistoryTTL and HistoryMemory bound the cluster's history as
	// broker.Options' fields of the same names bound a node's; HistoryMemory is counted
	// approximately (entryBytes, topicBytesLua). Every node must be given the same.
	History       int
	HistoryTTL    time.Duration
	HistoryMemory int64
	// Slack is about how many entries the live log keeps, so that a node whose reader
	// falls behind does not lose entries; default 10000. A reader that falls further
	// behind finds a gap: its streams each get a missed event (broker.Broker.Lost).
	Slack int
	// Beat is how often a node tells Redis it is alive; default 1s.
	Beat time.Duration
	// NodeTTL is how long a node that stopped beating still counts; default 5s. Then
	// any other node announces that its subscribers left.
	NodeTTL time.Duration
	// Logger receives connection changes; nil discards them.
	Logger *slog.Logger
}

// Bus is a broker.Bus on a Redis stream. Start it with the broker it feeds; Close stops
// it. Safe for concurrent use.
type Bus struct {
	opts Options
	rdb  *redis.Client
	tail *redis.Client // the reader's own connection, closed to end a blocking read
	node string
	log  *slog.Logger

	up atomic.Bool // the reader's last call to Redis succeeded

	mu    sync.Mutex
	ops   []presenceOp // joins and leaves waiting for the presence worker
	marks uint64       // the last mark given to an op
	wake  chan struct{}
	begun chan struct{} // closed once the reader knows where it starts in the log
	b     Feed
	stop  context.CancelFunc
	done  sync.WaitGroup
	start sync.Once
	close sync.Once

	// Publishes waiting for the publish loop (publish.go).
	pmu    sync.Mutex
	pqueue []*pending
	pstop  bool
	pwake  chan struct{}
}

var _ broker.Bus = (*Bus)(nil)

// presenceOp is one join ('j') or leave ('l') of a local subscriber, whose id is id, or
// the count n of user id's streams in a room ('r') on this node, with the mark Occupy
// returned for it.
type presenceOp struct {
	kind  byte
	id    string
	topic string
	n     int
	mark  uint64
}

// New returns a Bus for the Redis at opts.URL. It does not connect: a Redis that is down
// at start-up is waited for, not an error.
func New(opts Options) (*Bus, error) {
	ro, err := redis.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("redisbus: %w", err)
	}
	if opts.Prefix == "" {
		opts.Prefix = "crier:"
	}
	if opts.Slack <= 0 {
		opts.Slack = 10000
	}
	if opts.Beat <= 0 {
		opts.Beat = time.Second
	}
	if opts.NodeTTL <= 0 {
		opts.NodeTTL = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// A publish must not be sent twice behind the publisher's back: the client's
	// retries are off, and publishers retry with an Idempotency-Key instead. Fail fast
	// while Redis is down, so that publishes answer 503 promptly.
	ro.MaxRetries = -1
	ro.DialTimeout = 2 * time.Second
	ro.DialerRetries = 1
	ro.ReadTimeout = 3 * time.Second
	ro.WriteTimeout = 3 * time.Second
	ro.ContextTimeoutEnabled = true
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	tail := *ro
	tail.PoolSize = 1
	return &Bus{
		opts:  opts,
		rdb:   redis.NewClient(ro),
		tail:  redis.NewClient(&tail),
		node:  hex.EncodeToString(raw[:]),
		log:   opts.Logger,
		wake:  make(chan struct{}, 1),
		begun: make(chan struct{}),
		pwake: make(chan struct{}, 1),
	}, nil
}

// Node is this node's name in Redis.
func (bus *Bus) Node() string { return bus.node }

// Feed is what the bus needs of the broker it feeds (a *broker.Broker): the events it
// reads from the log, and this node's streams and rooms to keep in Redis. Only the bus
// holds the broker as a Feed; the HTTP side sees a broker that cannot be fed.
type Feed interface {
	// Begin tells the broker where the bus starts reading the log.
	Begin(head uint64)
	// Deliver hands the broker events read from the log, in order.
	Deliver(evs ...*broker.Event)
	// Lost tells the broker that the log lost the events before next.
	Lost(next uint64)
	// SubscriberIDs lists this node's subscribers, for its presence in Redis.
	SubscriberIDs() []string
	// Occupants lists this node's room members; while is called with the broker's lock
	// held, once the snapshot is taken.
	Occupants(while func()) []broker.Occupant
}

// Start begins reading the log into b and keeping this node's presence; call it once,
// after the broker is made with this Bus in its options.
func (bus *Bus) Start(b Feed) {
	bus.start.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		bus.mu.Lock()
		bus.b, bus.stop = b, cancel
		bus.mu.Unlock()
		bus.done.Add(4)
		go func() { defer bus.done.Done(); bus.follow(ctx, b) }()
		go func() { defer bus.done.Done(); bus.keepPresence(ctx, b) }()
		go func() { defer bus.done.Done(); bus.publishLoop(ctx) }()
		go func() { defer bus.done.Done(); bus.keepHistory(ctx) }()
	})
}

// Close stops reading, takes this node out of the cluster (its subscribers are announced
// as gone) and closes the connections. Close is idempotent.
func (bus *Bus) Close() error {
	bus.close.Do(func() {
		bus.mu.Lock()
		stop := bus.stop
		bus.mu.Unlock()
		if stop != nil {
			stop()
		}
		_ = bus.tail.Close() // ends the reader's blocking read now
		bus.done.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := leaveScript.Run(ctx, bus.rdb, nil, bus.opts.Prefix, bus.opts.Slack, bus.node).Err(); err != nil {
			bus.log.Warn("could not take this node out of the cluster; it will expire", "err", err)
		}
		cancel()
		_ = bus.rdb.Close()
	})
	return nil
}

// Ready returns ErrUnreachable until the log has been read, and while Redis is down.
func (bus *Bus) Ready() error {
	if !bus.up.Load() {
		return ErrUnreachable
	}
	return nil
}

// opTimeout bounds one call to Redis on behalf of a request.
const opTimeout = 3 * time.Second

// Joined queues a new_user announcement; it never blocks.
func (bus *Bus) Joined(subscriber string) { bus.queue(presenceOp{kind: 'j', id: subscriber}) }

// Left queues a user_left announcement; it never blocks.
func (bus *Bus) Left(subscriber string) { bus.queue(presenceOp{kind: 'l', id: subscriber}) }

// queue hands op, marked, to the presence worker and returns its mark.
func (bus *Bus) queue(op presenceOp) uint64 {
	bus.mu.Lock()
	bus.marks++
	op.mark = bus.marks
	bus.ops = append(bus.ops, op)
	bus.mu.Unlock()
	select {
	case bus.wake <- struct{}{}:
	default:
	}
	return op.mark
}

// entryID reads the event id out of a stream entry id "<id>-0".
func entryID(s string) (uint64, bool) {
	ms, _, _ := strings.Cut(s, "-")
	return broker.ParseID(ms)
}

// toEvent turns a stream entry into the event it carries; nil for a malformed entry, and
// for a mark of another node than node.
func toEvent(entry string, vals map[string]any, node string) *broker.Event {
	id, ok := entryID(entry)
	if !ok {
		return nil
	}
	str := func(k string) string { s, _ := vals[k].(string); return s }
	t := time.UnixMicro(int64(id))
	switch str("k") {
	case "p":
		return &broker.Event{ID: id, Topic: str("t"), Name: str("e"), Data: []byte(str("d")), Text: str("x") == "1", Time: t}
	case "j", "l":
		name := broker.NameNewUser
		if str("k") == "l" {
			name = broker.NameUserLeft
		}
		n, _ := strconv.Atoi(str("c"))
		return broker.PresenceEvent(id, t, name, str("s"), n)
	case "J", "L":
		ev := roomEvent(id, t, str("k"), str)
		if mark, ok := markOf(str, node); ok {
			ev.WithMark(mark)
		}
		return ev
	case "g":
		if mark, ok := markOf(str, node); ok {
			return broker.Mark(id, mark)
		}
	}
	return nil
}

// LogClientTo sends the Redis client's own messages (one per failed dial, say) to log at
// debug level instead of stderr; the Bus logs what matters itself. The client's logger is
// global to the process, so main calls this once.
func LogClientTo(log *slog.Logger) { redis.SetLogger(clientLog{log}) }

type clientLog struct{ log *slog.Logger }

func (c clientLog) Printf(ctx context.Context, format string, v ...any) {
	c.log.DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}
