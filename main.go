// Command crier is a Server-Sent Events notification service: browsers and scripts open
// /events, applications POST /publish, and every stream hears who comes and goes.
package main

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"syscall"
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

//go:embed templates static
var assets embed.FS

// clientJS is the browser client library, served as /crier.js.
//
//go:embed clients/js/crier.js
var clientJS []byte

func main() {
	// One processor more than the machine offers: the hub's writers take one per core,
	// and one is left for the network poller and the request handlers (hub.Options.Writers).
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is crier from its arguments to its exit code: 0 after a clean shutdown, 1 when it
// cannot serve, 2 for bad flags.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "token" {
		return mintToken(args[1:], getenv(envName("jwt-key")), time.Now(), stdout, stderr)
	}
	check := len(args) > 0 && args[0] == "healthcheck"
	if check {
		args = args[1:]
	}
	cfg, rest, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "crier: %v\n", err)
		return 2
	}
	if len(rest) == 1 && rest[0] == "healthcheck" && !check {
		check, rest = true, nil
	}
	if len(rest) > 0 && rest[0] == "token" && !check {
		return mintToken(rest[1:], cfg.JWTKey, time.Now(), stdout, stderr)
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "crier: unexpected argument %q (the subcommands are healthcheck and token)\n", rest[0])
		return 2
	}
	if check {
		return healthcheck(cfg.Addr, cfg.tls(), stderr)
	}
	tlsConf, err := cfg.tlsConfig()
	if err != nil {
		fmt.Fprintf(stderr, "crier: %v\n", err)
		return 2
	}
	return serve(ctx, cfg, tlsConf, newLogger(cfg, stderr))
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel) // validated by parseConfig
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs the service until ctx is done, then shuts down within cfg.ShutdownTimeout.
// With tlsConf it serves HTTPS.
func serve(ctx context.Context, cfg *config, tlsConf *tls.Config, log *slog.Logger) int {
	bopts := broker.Options{
		History:        cfg.History,
		HistoryTTL:     cfg.HistoryTTL,
		HistoryMemory:  int64(cfg.HistoryMemory),
		Buffer:         cfg.Buffer,
		MaxSubscribers: cfg.MaxSubscribers,
		Presence:       cfg.Presence,
		Encode:         sse.Encode,
	}
	if len(cfg.rooms) > 0 {
		bopts.Rooms = cfg.rooms.Match
	}
	var bus *redisbus.Bus
	if cfg.RedisURL != "" {
		var err error
		redisbus.LogClientTo(log)
		bus, err = redisbus.New(redisbus.Options{URL: cfg.RedisURL, History: cfg.History, Logger: log})
		if err != nil {
			log.Error("cannot use -redis-url", "err", err)
			return 1
		}
		bopts.Bus = bus
	}
	reg := prometheus.NewRegistry()
	hooks, err := startWebhooks(cfg, log, reg)
	if err != nil {
		log.Error("cannot use -webhook-url", "err", err)
		return 1
	}
	if hooks != nil {
		bopts.Observe = hooks.Observe
		// On the early returns: the normal shutdown has flushed it already.
		defer closeNow(hooks)
	}
	b := broker.New(bopts)
	if bus != nil {
		// Redis may be down now: the bus keeps trying, and /readyz says 503 meanwhile.
		bus.Start(b)
		defer bus.Close() // after the streams ended: takes this node out of the cluster
		log.Info("cluster node", "redis", redactURL(cfg.RedisURL), "node", bus.Node())
	}
	cfg.ensureToken()
	if cfg.tokenGenerated {
		log.Warn("no -publish-token given; generated one for this run", "publish_token", cfg.PublishToken)
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if bus != nil {
		reg.MustRegister(handlers.BusUp(bus.Ready))
	}
	// HTTP/1.1 streams are handed to the hub's few writers; HTTP/2 streams keep a handler
	// goroutine each.
	streams := hub.New(hub.Options{})
	defer streams.Close()
	templates, _ := fs.Sub(assets, "templates")
	static, _ := fs.Sub(assets, "static")
	h, err := handlers.New(handlers.Options{
		Broker:        b,
		Logger:        log,
		Templates:     templates,
		Static:        static,
		Client:        clientJS,
		CORSOrigins:   cfg.origins(),
		Heartbeat:     cfg.Heartbeat,
		Retry:         cfg.Retry,
		MaxBody:       int64(cfg.MaxBody),
		PublishToken:  cfg.PublishToken,
		PrivateTopics: cfg.private,
		Tokens:        cfg.tokens,
		Registerer:    reg,
		Stats:         b.Stats,
		Hub:           streams,
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			ErrorHandling: promhttp.ContinueOnError, // a partial scrape beats a 500
		}),
		MaxStreamsPerAddr: cfg.MaxStreamsPerIP,
	})
	if err != nil {
		log.Error("cannot build the HTTP handler", "err", err)
		return 1
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.Addr, "err", err)
		return 1
	}
	srv := &http.Server{
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
	srv.RegisterOnShutdown(b.Close)

	served := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			served <- srv.ServeTLS(ln, "", "") // the certificate is in TLSConfig
			return
		}
		served <- srv.Serve(ln)
	}()
	if cfg.tokens != nil {
		log.Info("tokens accepted", "private_topics", cfg.private.String(),
			"hmac_key", cfg.JWTKey != "", "public_key", cfg.JWTPublicKey)
	}
	log.Info("crier listening", "addr", ln.Addr().String(), "protocols", srv.Protocols.String(), "presence", cfg.Presence,
		"history", cfg.History, "buffer", cfg.Buffer, "max_subscribers", cfg.MaxSubscribers,
		"presence_topics", cfg.rooms.String())

	select {
	case err := <-served:
		log.Error("server stopped", "err", err)
		return 1
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	b.Close() // readyz turns 503, new streams are refused, open streams end
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown timed out; closing the remaining connections", "err", err)
		_ = srv.Close()
	}
	// Hijacked streams are the hub's, not the server's: wait for their clean ends too.
	if err := streams.Shutdown(sctx); err != nil {
		log.Warn("shutdown timed out; closed the remaining streams", "err", err)
	}
	if hooks != nil {
		// The streams have ended, so their disconnects are queued: send them in what is
		// left of the shutdown's time.
		_ = hooks.Close(sctx) // it logs what it could not deliver
	}
	<-served
	log.Info("stopped")
	return 0
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
