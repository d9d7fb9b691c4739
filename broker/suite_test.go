package broker_test

import (
	"testing"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/broker/brokertest"
)

func TestSuite(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, opts broker.Options) brokertest.Broker {
		b := broker.New(opts)
		t.Cleanup(b.Close)
		return b
	})
}
