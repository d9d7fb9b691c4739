package handlers

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crierhq/crier/broker"
)

// metrics are what the handlers count themselves. The broker's own totals are read at
// scrape time by statsCollector, so the broker stays free of Prometheus.
type metrics struct {
	publishes *prometheus.CounterVec // by status code
	closes    *prometheus.CounterVec // by reason
	failures  prometheus.Counter     // publishes the broker failed (not refused)
}

// newMetrics registers the handlers' metrics on reg, and the broker's totals when stats
// is not nil. A nil reg measures into counters that nobody reads.
func newMetrics(reg prometheus.Registerer, stats func() broker.Stats) (*metrics, error) {
	m := &metrics{
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_publish_requests_total",
			Help: "POST /publish requests answered, by HTTP status code.",
		}, []string{"code"}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_streams_closed_total",
			Help: "Streams of GET /events that ended, by reason.",
		}, []string{"reason"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crier_publish_failures_total",
			Help: "Publishes that failed for want of the broker's backing store (Redis unreachable), answered 503.",
		}),
	}
	// Known label values start at zero, so rate() sees their first increment.
	for _, code := range []int{200, 400, 401, 403, 413, 415, 422, 503} {
		m.publishes.WithLabelValues(strconv.Itoa(code))
	}
	for r := closeReason(0); r < numCloseReasons; r++ {
		m.closes.WithLabelValues(r.label())
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.publishes, m.closes, m.failures}
	if stats != nil {
		cs = append(cs, newStatsCollector(stats))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// countPublishes wraps the publish handler and counts its answers by status code.
func (m *metrics) countPublishes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		m.publishes.WithLabelValues(strconv.Itoa(rec.code())).Inc()
	})
}

// statsCollector exports broker.Stats, read once per scrape.
type statsCollector struct {
	stats func() broker.Stats

	subscribers, attached, detached, published, presence,
	deliveries, replayed, cutOff, duplicates, gaps, retained, retainedBytes, refused, waited *prometheus.Desc
}

func newStatsCollector(stats func() broker.Stats) *statsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &statsCollector{
		stats:       stats,
		subscribers: d("crier_subscribers", "Open streams on this node."),
		attached:    d("crier_subscribers_attached_total", "Streams opened (subscriptions attached)."),
		detached:    d("crier_subscribers_detached_total", "Streams ended, for any reason (subscriptions detached)."),
		published: d("crier_events_published_total",
			"Events accepted for delivery, by kind: broadcast (no topic) or topic.", "kind"),
		presence:   d("crier_presence_events_total", "new_user and user_left events sent."),
		deliveries: d("crier_deliveries_total", "Live events queued to subscribers, one per subscriber per event."),
		replayed:   d("crier_replayed_events_total", "Events queued from history on resume, missed notices included."),
		cutOff:     d("crier_slow_subscribers_total", "Subscribers cut off for falling -buffer events behind."),
		duplicates: d("crier_publish_duplicates_total", "Publishes answered from an Idempotency-Key and not sent again."),
		gaps: d("crier_log_gaps_total",
			"Entries of the cluster's log found lost before this node read them; each gap sends every open stream a missed event."),
		retained: d("crier_history_events", "Events in this node's history."),
		retainedBytes: d("crier_history_bytes",
			"Bytes this node's history takes, as -history-memory counts them."),
		refused: d("crier_publishes_refused_total",
			"Publishes answered 503 and not accepted because delivery stayed behind publishing for -publish-wait.", "reason"),
		waited: d("crier_publish_wait_seconds",
			"Time publishes waited for room while delivery was behind publishing (count: publishes that waited)."),
	}
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.subscribers, c.attached, c.detached, c.published,
		c.presence, c.deliveries, c.replayed, c.cutOff, c.duplicates, c.gaps, c.retained, c.retainedBytes,
		c.refused, c.waited} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	ch <- prometheus.MustNewConstMetric(c.subscribers, prometheus.GaugeValue, float64(s.Subscribers))
	counter(c.attached, s.Attached)
	counter(c.detached, s.Detached)
	counter(c.published, s.Broadcasts, "broadcast")
	counter(c.published, s.Topical, "topic")
	counter(c.presence, s.Presence)
	counter(c.deliveries, s.Deliveries)
	counter(c.replayed, s.Replayed)
	counter(c.cutOff, s.CutOff)
	counter(c.duplicates, s.Duplicates)
	counter(c.gaps, s.Gaps)
	ch <- prometheus.MustNewConstMetric(c.retained, prometheus.GaugeValue, float64(s.Retained))
	ch <- prometheus.MustNewConstMetric(c.retainedBytes, prometheus.GaugeValue, float64(s.RetainedBytes))
	counter(c.refused, s.Refused, "overload")
	ch <- prometheus.MustNewConstSummary(c.waited, s.PublishWaits, s.PublishWaited.Seconds(), nil)
}

// BusUp returns a gauge, crier_bus_up, that is 1 while ready returns nil and 0 otherwise.
// Register it when a cross-node bus is configured, with that bus's (or the broker's)
// Ready; ready is called once per scrape and must not block for long.
func BusUp(ready func() error) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "crier_bus_up",
		Help: "1 while the cross-node bus (Redis) is reachable, 0 otherwise.",
	}, func() float64 {
		if ready() != nil {
			return 0
		}
		return 1
	})
}
