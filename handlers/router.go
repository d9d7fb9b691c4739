// Package handlers is crier's HTTP face: the chi router, CORS, the page, the SSE stream,
// publishing, health and metrics. It translates HTTP to broker calls and back.
package handlers

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/cors"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crierhq/crier/auth"
	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers/hub"
	"github.com/crierhq/crier/handlers/sse"
)

// Broker is what the handlers need of a broker: the in-memory one or a cross-node one.
type Broker interface {
	Subscribe(broker.Request) (*broker.Subscription, error)
	Publish(context.Context, broker.Message) (broker.Receipt, error)
	History(ctx context.Context, topic string, after uint64, limit int) (broker.Page, error)
	// Ready returns nil while subscribing and publishing work.
	Ready() error
	// Room returns who is in a room; broker.ErrNotRoom for a topic that is not one.
	Room(ctx context.Context, topic string, limit int) (broker.Room, error)
}

// Options configure the handler. Zero fields take the defaults noted.
type Options struct {
	Broker Broker       // required
	Logger *slog.Logger // nil discards logs
	// Templates holds index.html; Static holds the page's assets served under /static/.
	Templates fs.FS
	Static    fs.FS
	// Client is the browser client library, served as GET /crier.js; nil answers 404.
	Client []byte
	// CORSOrigins lists origins allowed to read streams and publish from a browser;
	// nil or ["*"] allows any.
	CORSOrigins []string
	Heartbeat   time.Duration // comment on idle streams this often; default 15s
	Retry       time.Duration // reconnection delay sent to clients; default 3s
	// ReconnectSpread is the window over which the clients of streams that crier ends
	// itself (shutdown, a slow client cut off, an expired token) are told to come back,
	// after Retry: each gets a retry field drawn from it just before the end, so that
	// they do not all reconnect at once. Zero tells every one Retry.
	ReconnectSpread time.Duration
	// WriteTimeout bounds each write to a stream, so a client that stopped reading
	// frees its stream; default 30s.
	WriteTimeout time.Duration
	// Hub, when set, takes HTTP/1.1 streams over after their response head, so that an
	// open stream costs no goroutine, buffers or timer (see package hub); its owner
	// stops it. Nil serves every stream from its own handler goroutine through the
	// ResponseWriter.
	Hub          *hub.Hub
	MaxBody      int64  // largest publish body; default 1 MiB
	PublishToken string // bearer token for POST /publish; required
	// PrivateTopics are the topics a stream may follow only with a token that grants
	// them (see package auth for the pattern syntax); empty: every topic is public.
	PrivateTopics auth.Patterns
	// Tokens verifies the JWTs presented to /events and /publish; nil accepts none, and
	// then PrivateTopics must be empty.
	Tokens *auth.Verifier
	// Registerer receives the handlers' metrics (publish requests by status, stream
	// closes by reason) and, with Stats, the broker's totals; nil measures nothing.
	// Never the global registry: tests build handlers side by side.
	Registerer prometheus.Registerer
	// Stats reports the broker's running totals; it is called at every scrape.
	// Nil leaves them out.
	Stats func() broker.Stats
	// Metrics serves GET /metrics (typically promhttp.HandlerFor over the registry
	// behind Registerer); nil answers 404.
	Metrics http.Handler
	// MaxStreamsPerAddr caps the open streams of one client address (the peer's IP:
	// behind a proxy, the proxy's); beyond it /events answers 429. Zero: no cap.
	MaxStreamsPerAddr int
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.Retry <= 0 {
		o.Retry = 3 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 1 << 20
	}
	if len(o.CORSOrigins) == 0 {
		o.CORSOrigins = []string{"*"}
	}
}

// New returns crier's HTTP handler.
func New(o Options) (http.Handler, error) {
	o.setDefaults()
	if o.Broker == nil {
		return nil, fmt.Errorf("handlers: no broker")
	}
	if o.PublishToken == "" {
		return nil, fmt.Errorf("handlers: no publish token")
	}
	if len(o.PrivateTopics) > 0 && o.Tokens == nil {
		return nil, fmt.Errorf("handlers: private topics without a token verifier")
	}
	page, err := newPage(o.Templates, o.Static, o.Client)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registerer, o.Stats)
	if err != nil {
		return nil, fmt.Errorf("handlers: register metrics: %w", err)
	}
	az := &authorizer{private: o.PrivateTopics, tokens: o.Tokens, publishToken: []byte(o.PublishToken)}
	ev := &eventsHandler{broker: o.Broker, auth: az, log: o.Logger, retry: o.Retry, closes: m.closes, hub: o.Hub, stream: streamer{
		heartbeat:    o.Heartbeat,
		writeTimeout: o.WriteTimeout,
		opening:      sse.Retry(o.Retry.Milliseconds()),
		retry:        o.Retry,
		spread:       max(o.ReconnectSpread, 0),
	}}
	ev.perAddr = newAddrLimiter(o.MaxStreamsPerAddr)
	pub := &publishHandler{broker: o.Broker, log: o.Logger, auth: az, maxBody: o.MaxBody, retry: o.Retry, failures: m.failures}

	r := chi.NewRouter()
	r.Use(middleware.RequestID, logRequests(o.Logger), recoverer(o.Logger), noSniff, exceptMetrics(cors.Handler(cors.Options{
		AllowedOrigins: o.CORSOrigins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodHead, http.MethodOptions},
		AllowedHeaders: []string{"Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "Cache-Control"},
		ExposedHeaders: []string{"Retry-After"},
		MaxAge:         600,
		// A browser sends the token cookie cross-origin only to a server that allows
		// credentials, which CORS permits for listed origins only, never for "*".
		AllowCredentials: o.Tokens != nil && !slices.Contains(o.CORSOrigins, "*"),
	})))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, reject(http.StatusNotFound, "no such endpoint"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, reject(http.StatusMethodNotAllowed, r.Method+" is not allowed here"))
	})
	// Documents and probes answer HEAD too, as any web server's do; a stream does not.
	getHead(r, "/", page.index)
	getHead(r, "/static/*", page.static)
	getHead(r, "/crier.js", page.library)
	r.Get("/events", ev.ServeHTTP)
	r.Get("/history", (&historyHandler{broker: o.Broker, auth: az, retry: o.Retry}).ServeHTTP)
	r.Get("/presence", (&presenceHandler{broker: o.Broker, auth: az, retry: o.Retry}).ServeHTTP)
	r.Post("/publish", readWithin(bodyTimeout, m.countPublishes(pub)).ServeHTTP)
	getHead(r, "/healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, map[string]string{"status": "ok"}) })
	getHead(r, "/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := o.Broker.Ready(); err != nil {
			writeErr(w, brokerError(err, o.Retry))
			return
		}
		writeJSON(w, map[string]string{"status": "ready"})
	})
	if o.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", o.Metrics)
	}
	return r, nil
}

// getHead routes both GET and HEAD of path to h; net/http drops the body of a HEAD.
func getHead(r chi.Router, path string, h http.HandlerFunc) {
	r.Get(path, h)
	r.Head(path, h)
}

// exceptMetrics applies mw to every path but /metrics: served with CORS headers under
// "*", the metrics could be read by a script of any site a browser visits.
func exceptMetrics(mw func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		wrapped := mw(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				next.ServeHTTP(w, r)
				return
			}
			wrapped.ServeHTTP(w, r)
		})
	}
}

// noSniff keeps browsers from running a response as another type than it declares (a
// JSON error or an event stream as a script or a page).
func noSniff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a panic into a logged JSON 500. A panic is a bug; the process survives it.
func recoverer(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.Error("handler panicked", "path", r.URL.Path, "panic", fmt.Sprint(v),
						"request_id", middleware.GetReqID(r.Context()))
					writeErr(w, reject(http.StatusInternalServerError, "internal error"))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

func retrySeconds(d time.Duration) int { return max(1, int((d+time.Second-1)/time.Second)) }
