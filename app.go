package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/broker/redisbus"
	"github.com/crierhq/crier/handlers"
	"github.com/crierhq/crier/handlers/hub"
	"github.com/crierhq/crier/handlers/sse"
	"github.com/crierhq/crier/webhook"
)

// app is crier built from its configuration: what it serves with, and what it stops.
type app struct {
	cfg    *config
	log    *slog.Logger
	broker *broker.Broker
	bus    *redisbus.Bus   // nil without -redis-url
	hooks  *webhook.Sender // nil without -webhook-url
	hub    *hub.Hub
	srv    *http.Server
	ln     net.Listener
	// sides are the servers beside the main one: /metrics on -metrics-addr, and the
	// profiles of a build with -tags pprof.
	sides []side
}

// side is a server of its own listener, started and stopped with the main one.
type side struct {
	what string // what it serves, for the log
	srv  *http.Server
	ln   net.Listener
}

// newApp builds crier from cfg, listening but not yet serving. With tlsConf it will
// serve HTTPS. On error, what it built is released again.
func newApp(cfg *config, tlsConf *tls.Config, log *slog.Logger) (_ *app, err error) {
	a := &app{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	bopts := broker.Options{
		History:        cfg.History,
		HistoryTTL:     cfg.HistoryTTL,
		HistoryMemory:  int64(cfg.HistoryMemory),
		Buffer:         cfg.Buffer,
		PublishWait:    cfg.PublishWait,
		MaxSubscribers: cfg.MaxSubscribers,
		Presence:       cfg.Presence,
		Encode:         sse.Encode,
		Log:            log,
	}
	if len(cfg.rooms) > 0 {
		bopts.Rooms = cfg.rooms.Match
	}
	if cfg.RedisURL != "" {
		redisbus.LogClientTo(log)
		a.bus, err = redisbus.New(redisbus.Options{URL: cfg.RedisURL, History: cfg.History,
			HistoryTTL: cfg.HistoryTTL, HistoryMemory: int64(cfg.HistoryMemory), Logger: log})
		if err != nil {
			return nil, fmt.Errorf("-redis-url: %w", err)
		}
		bopts.Bus = a.bus
	}
	reg := prometheus.NewRegistry()
	if a.hooks, err = startWebhooks(cfg, log, reg); err != nil {
		return nil, fmt.Errorf("-webhook-url: %w", err)
	}
	if a.hooks != nil {
		bopts.Observe = a.hooks.Observe
	}
	a.broker = broker.New(bopts)
	if a.bus != nil {
		// Redis may be down now: the bus keeps trying, and /readyz says 503 meanwhile.
		a.bus.Start(a.broker)
		log.Info("cluster node", "redis", redactURL(cfg.RedisURL), "node", a.bus.Node())
	}
	cfg.ensureToken()
	if cfg.tokenGenerated {
		log.Warn("no -publish-token given; generated one for this run", "publish_token", cfg.PublishToken)
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if a.bus != nil {
		reg.MustRegister(handlers.BusUp(a.bus.Ready))
	}
	// HTTP/1.1 streams are handed to the hub's few writers; HTTP/2 streams keep a handler
	// goroutine each.
	a.hub = hub.New(hub.Options{})
	templates, _ := fs.Sub(assets, "templates")
	static, _ := fs.Sub(assets, "static")
	scrape := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError, // a partial scrape beats a 500
	})
	onMain := scrape
	if cfg.MetricsAddr != "" {
		onMain = nil // the main listener answers /metrics with 404
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return nil, fmt.Errorf("listen on -metrics-addr %s: %w", cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", scrape)
		a.sides = append(a.sides, side{what: "metrics", ln: ln, srv: &http.Server{Handler: mux,
			ReadHeaderTimeout: cfg.HeaderTimeout, WriteTimeout: 30 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}})
	}
	h, err := handlers.New(handlers.Options{
		Broker:            a.broker,
		Logger:            log,
		Templates:         templates,
		Static:            static,
		Client:            clientJS,
		CORSOrigins:       cfg.origins(),
		Heartbeat:         cfg.Heartbeat,
		Retry:             cfg.Retry,
		ReconnectSpread:   cfg.ReconnectSpread,
		MaxBody:           int64(cfg.MaxBody),
		PublishToken:      cfg.PublishToken,
		PrivateTopics:     cfg.private,
		Tokens:            cfg.tokens,
		Registerer:        reg,
		Stats:             a.broker.Stats,
		Hub:               a.hub,
		Metrics:           onMain,
		MaxStreamsPerAddr: cfg.MaxStreamsPerIP,
	})
	if err != nil {
		return nil, fmt.Errorf("the HTTP handler: %w", err)
	}

	if a.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	// net/http logs failed accepts (out of file descriptors) only at debug: warn and count.
	if ln, err := handlers.WatchAccepts(a.ln, log, reg); err != nil {
		_ = a.ln.Close()
		return nil, fmt.Errorf("count accept errors: %w", err)
	} else {
		a.ln = ln
	}
	a.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.HeaderTimeout,
		// Streams replace this with a deadline per write; other responses keep it.
		WriteTimeout:   30 * time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		TLSConfig:      tlsConf,
		Protocols:      protocols(tlsConf != nil, cfg.H2C),
	}
	// http.Server.Shutdown waits for handlers to return, and a stream never does by
	// itself: closing the broker ends every stream.
	a.srv.RegisterOnShutdown(a.broker.Close)
	var fresh unused
	a.srv.ConnState = fresh.track
	a.srv.RegisterOnShutdown(fresh.close)
	if prof := pprofServer(); prof != nil {
		if ln, err := net.Listen("tcp", prof.Addr); err != nil {
			// Profiles are a debugging aid: crier serves without them.
			log.Warn("cannot serve profiles", "addr", prof.Addr, "err", err)
		} else {
			a.sides = append(a.sides, side{what: "profiles", srv: prof, ln: ln})
		}
	}
	return a, nil
}

// run serves until ctx is done, then shuts down within -shutdown-timeout. It returns the
// process's exit code: 0 after a clean shutdown, 1 when serving failed.
func (a *app) run(ctx context.Context) int {
	defer a.close()
	served := make(chan error, 1)
	go func() {
		if a.srv.TLSConfig != nil {
			served <- a.srv.ServeTLS(a.ln, "", "") // the certificate is in TLSConfig
			return
		}
		served <- a.srv.Serve(a.ln)
	}()
	sided := make(chan error, len(a.sides))
	for _, sd := range a.sides {
		go func() { sided <- fmt.Errorf("%s server: %w", sd.what, sd.srv.Serve(sd.ln)) }()
		a.log.Info("serving "+sd.what, "addr", sd.ln.Addr().String())
	}
	cfg := a.cfg
	if cfg.tokens != nil {
		a.log.Info("tokens accepted", "private_topics", cfg.private.String(),
			"hmac_key", cfg.JWTKey != "", "public_key", cfg.JWTPublicKey)
	}
	a.log.Info("crier listening", "addr", a.ln.Addr().String(), "protocols", a.srv.Protocols.String(), "presence", cfg.Presence,
		"history", cfg.History, "buffer", cfg.Buffer, "max_subscribers", cfg.MaxSubscribers,
		"presence_topics", cfg.rooms.String())

	code := 0
	select {
	case err := <-served:
		a.log.Error("server stopped", "err", err)
		code = 1
	case <-ctx.Done():
		a.shutdown()
		<-served
		a.log.Info("stopped")
	}
	for _, sd := range a.sides {
		_ = sd.srv.Close()
	}
	for range a.sides {
		if err := <-sided; !errors.Is(err, http.ErrServerClosed) {
			a.log.Warn("stopped", "err", err)
		}
	}
	return code
}

// shutdown ends every stream and request within -shutdown-timeout.
func (a *app) shutdown() {
	a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
	a.broker.Close() // readyz turns 503, new streams are refused, open streams end
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		a.log.Warn("shutdown timed out; closing the remaining connections", "err", err)
		_ = a.srv.Close()
	}
	// Hijacked streams are the hub's, not the server's: wait for their clean ends too.
	if err := a.hub.Shutdown(ctx); err != nil {
		a.log.Warn("shutdown timed out; closed the remaining streams", "err", err)
	}
	if a.hooks != nil {
		// The streams have ended, so their disconnects are queued: send them in what is
		// left of the shutdown's time.
		_ = a.hooks.Close(ctx) // it logs what it could not deliver
	}
}

// close releases whatever is still held, in the reverse order of newApp; after a clean
// shutdown that is the hub's goroutines and the bus (which takes this node out of the
// cluster once its streams have ended).
func (a *app) close() {
	for _, sd := range a.sides {
		_ = sd.ln.Close()
	}
	if a.ln != nil {
		_ = a.ln.Close()
	}
	if a.hub != nil {
		a.hub.Close()
	}
	if a.broker != nil {
		a.broker.Close()
	}
	if a.hooks != nil {
		closeNow(a.hooks) // the normal shutdown has flushed it already
	}
	if a.bus != nil {
		a.bus.Close()
	}
}

// startWebhooks starts the webhook sender that -webhook-url asks for; nil without one.
func startWebhooks(cfg *config, log *slog.Logger, reg prometheus.Registerer) (*webhook.Sender, error) {
	if cfg.WebhookURL == "" {
		return nil, nil
	}
	return webhook.New(webhook.Options{URL: cfg.WebhookURL, Secret: []byte(cfg.WebhookSecret),
		Logger: log, Registerer: reg})
}

// closeNow stops hooks without waiting for its queue; what was queued is counted as dropped.
func closeNow(hooks *webhook.Sender) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = hooks.Close(ctx)
}

// protocols is what the server speaks: HTTP/1.1 always; HTTP/2 over TLS, where browsers
// use it and lift their limit of six streams per host; cleartext HTTP/2 only when asked,
// since browsers never speak it and only a proxy in front would.
func protocols(tls, h2c bool) *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(tls)
	p.SetUnencryptedHTTP2(h2c)
	return &p
}

// redactURL hides the password of a Redis URL for the log.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
