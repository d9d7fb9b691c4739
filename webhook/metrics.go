package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Sender's counters.
type metrics struct {
	dropped prometheus.Counter // events not delivered: queue full, or not sent by shutdown
	sent    prometheus.Counter // batches the backend answered 2xx
	events  prometheus.Counter // events in those
	failed  prometheus.Counter // attempts that failed, each retried
}

// newMetrics registers the metrics on reg (nil: none) along with the queue length that
// queued reports.
func newMetrics(reg prometheus.Registerer, queued func() float64) (*metrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &metrics{
		dropped: counter("crier_webhook_dropped_total", "Webhook events dropped: the queue was full, or shutdown came before they were sent."),
		sent:    counter("crier_webhook_batches_sent_total", "Webhook requests the backend answered 2xx."),
		events:  counter("crier_webhook_events_sent_total", "Webhook events in the batches the backend answered 2xx."),
		failed:  counter("crier_webhook_batches_failed_total", "Webhook requests that failed (not 2xx, or no answer) and are retried."),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.dropped, m.sent, m.events, m.failed,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "crier_webhook_queue_events",
			Help: "Webhook events not sent yet: queued, or in a request not answered yet.",
		}, queued)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
