package redisbus_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/broker/brokertest"
	"github.com/crierhq/crier/broker/redisbus"
	"github.com/crierhq/crier/internal/testenv"
)

var prefixes atomic.Int64

// node is one cluster node in this process: a broker fed by a Bus.
type node struct {
	*broker.Broker
	bus *redisbus.Bus
}

// startNode starts a node on the log under prefix and waits until it reads the log.
func startNode(t testing.TB, url, prefix string, opts broker.Options, tune func(*redisbus.Options)) *node {
	t.Helper()
	return startFed(t, url, prefix, opts, tune, nil)
}

// startFed starts a node whose bus feeds feed(broker) instead of the broker itself.
func startFed(t testing.TB, url, prefix string, opts broker.Options, tune func(*redisbus.Options), feed func(*broker.Broker) redisbus.Feed) *node {
	t.Helper()
	bo := redisbus.Options{URL: url, Prefix: prefix, History: opts.History, HistoryTTL: opts.HistoryTTL, HistoryMemory: opts.HistoryMemory}
	if tune != nil {
		tune(&bo)
	}
	bus, err := redisbus.New(bo)
	if err != nil {
		t.Fatal(err)
	}
	opts.Bus = bus
	b := broker.New(opts)
	if feed == nil {
		bus.Start(b)
	} else {
		bus.Start(feed(b))
	}
	n := &node{Broker: b, bus: bus}
	t.Cleanup(n.stop)
	testenv.Eventually(t, 10*time.Second, b.Ready)
	return n
}

func (n *node) stop() {
	n.Close()
	_ = n.bus.Close()
}

func newPrefix() string { return fmt.Sprintf("t%d:", prefixes.Add(1)) }

// TestSuite runs the behaviour every broker shares against a node backed by Redis.
func TestSuite(t *testing.T) {
	r := testenv.StartRedis(t)
	brokertest.Run(t, func(t *testing.T, opts broker.Options) brokertest.Broker {
		return startNode(t, r.URL, newPrefix(), opts, nil)
	})
}

func TestStartsWhileRedisIsDown(t *testing.T) {
	r := testenv.StartRedis(t)
	r.Stop()
	bus, err := redisbus.New(redisbus.Options{URL: r.URL, Prefix: newPrefix(), History: 10})
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(broker.Options{Bus: bus, History: 10})
	bus.Start(b)
	defer bus.Close()
	defer b.Close()
	if err := b.Ready(); err == nil {
		t.Fatal("Ready() = nil while redis is down")
	}
	if _, err := b.Publish(context.Background(), broker.Message{Data: []byte(`1`)}); err == nil {
		t.Fatal("Publish succeeded while redis is down")
	}
	r.Start()
	testenv.Eventually(t, 10*time.Second, b.Ready) // after redis came up
	if _, err := b.Publish(context.Background(), broker.Message{Data: []byte(`1`)}); err != nil {
		t.Fatalf("Publish after redis came up: %v", err)
	}
}
