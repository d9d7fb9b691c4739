// Command crier is a Server-Sent Events notification service: browsers and scripts open
// /events, applications POST /publish, and every stream hears who comes and goes.
package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
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
	cmd, args := subcommand(args)
	if cmd == "token" {
		// Its flags are its own, not the server's: the key comes from the environment or
		// from them.
		return mintToken(args, getenv(envName("jwt-key")), time.Now(), stdout, stderr)
	}
	cfg, rest, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "crier: %v\n", err)
		return 2
	}
	if cmd == "" {
		cmd, rest = subcommand(rest) // crier [flags] healthcheck, crier [flags] token ...
		if cmd == "token" {
			return mintToken(rest, cfg.JWTKey, time.Now(), stdout, stderr)
		}
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "crier: unexpected argument %q (the subcommands are healthcheck and token)\n", rest[0])
		return 2
	}
	if cmd == "healthcheck" {
		return healthcheck(cfg.Addr, cfg.tls(), stderr)
	}
	tlsConf, err := cfg.tlsConfig()
	if err != nil {
		fmt.Fprintf(stderr, "crier: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	a, err := newApp(cfg, tlsConf, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	return a.run(ctx)
}

// subcommand splits a subcommand's name (healthcheck or token) off the front of args;
// it returns "" and args as they are when they do not start with one.
func subcommand(args []string) (string, []string) {
	if len(args) > 0 && (args[0] == "healthcheck" || args[0] == "token") {
		return args[0], args[1:]
	}
	return "", args
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel) // validated by parseConfig
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
