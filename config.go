package main

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/crierhq/crier/auth"
	"github.com/crierhq/crier/webhook"
)

// config is everything the flags and CRIER_* environment variables set.
type config struct {
	Addr            string
	MetricsAddr     string
	CORSOrigins     string
	Heartbeat       time.Duration
	Retry           time.Duration
	ReconnectSpread time.Duration
	History         int
	HistoryTTL      time.Duration
	HistoryMemory   size
	Buffer          int
	PublishWait     time.Duration
	MaxSubscribers  int
	Presence        bool
	MaxBody         size
	PublishToken    string
	RedisURL        string
	ShutdownTimeout time.Duration
	LogFormat       string
	LogLevel        string
	PrivateTopics   string // comma-separated patterns
	PresenceTopics  string // comma-separated patterns
	JWTKey          string // HMAC secret
	JWTPublicKey    string // path of a PEM public key
	JWTAudience     string
	JWTIssuer       string
	TLSCert         string
	TLSKey          string
	H2C             bool
	MaxStreamsPerIP int
	HeaderTimeout   time.Duration
	WebhookURL      string
	WebhookSecret   string

	tokenGenerated bool           // PublishToken was made up at start-up
	private        auth.Patterns  // PrivateTopics, parsed
	rooms          auth.Patterns  // PresenceTopics, parsed
	tokens         *auth.Verifier // built from JWTKey and JWTPublicKey; nil without either
}

// errHelp is returned by parseConfig when -h was asked for; usage went to stdout.
var errHelp = errors.New("help requested")

// parseConfig reads args (without the program name) and the environment. A flag given on
// the command line wins over its environment variable. Errors name the flag and value.
func parseConfig(args []string, getenv func(string) string, stdout io.Writer) (*config, []string, error) {
	c := &config{}
	fs := flag.NewFlagSet("crier", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Addr, "addr", ":8080", "listen `address` (host:port)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve GET /metrics on this `address` (host:port) of its own instead of on -addr, to keep it off the public listener (empty: on -addr)")
	fs.StringVar(&c.CORSOrigins, "cors-origins", "*", "comma-separated `origins` allowed to read streams and publish from a browser (* for any)")
	fs.DurationVar(&c.Heartbeat, "heartbeat", 15*time.Second, "write a comment line to every idle stream this often")
	fs.DurationVar(&c.Retry, "retry", 3*time.Second, "reconnection delay sent to clients in the retry: field")
	fs.DurationVar(&c.ReconnectSpread, "reconnect-spread", 5*time.Second, "when crier ends streams itself (shutdown, a slow client cut off, a token expired), each client is told\nto reconnect after -retry plus a random part of this window, so that they do not all come back at once (0: all after -retry)")
	fs.IntVar(&c.History, "history", 1000, "number of most recent events kept per topic for resume and GET /history; broadcasts are one topic of their own (0 disables resume)")
	fs.DurationVar(&c.HistoryTTL, "history-ttl", 0, "events older than this leave history (0: no age limit)")
	c.HistoryMemory = 256 << 20
	fs.Var(&c.HistoryMemory, "history-memory", "bound on the memory that all retained events take together, in bytes with an optional KiB/MiB suffix; beyond it the oldest events of any topic leave first (0: no bound)")
	fs.IntVar(&c.Buffer, "buffer", 256, "events queued per subscriber before it counts as slow and is cut off")
	fs.DurationVar(&c.PublishWait, "publish-wait", 5*time.Second, "how long a publish may wait for room while crier itself is behind delivering, before it answers 503")
	fs.IntVar(&c.MaxSubscribers, "max-subscribers", 0, "open streams allowed at once (0: unlimited)")
	fs.BoolVar(&c.Presence, "presence", true, "broadcast new_user/user_left events (false: none, for very large audiences)")
	fs.StringVar(&c.PresenceTopics, "presence-topics", "", "comma-separated topic `patterns` that are rooms: their streams get join/leave when a user's first stream in the room opens and its last ends, and GET /presence?topic= lists the members ('*' matches any run of characters; empty: no rooms)")
	c.MaxBody = 1 << 20
	fs.Var(&c.MaxBody, "max-body", "largest publish body accepted, in bytes with an optional KiB/MiB suffix")
	fs.StringVar(&c.PublishToken, "publish-token", "", "bearer `token` required by POST /publish (empty: a random one, logged once at start-up)")
	fs.StringVar(&c.RedisURL, "redis-url", "", "redis://host:port/db to run as one node of a cluster (empty: single node, in memory)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long SIGTERM/SIGINT waits for streams to drain")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log `format`: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM `file` with the certificate chain; with -tls-key, serve HTTPS with HTTP/2 and HTTP/1.1 (empty: plain HTTP)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM `file` with the private key of -tls-cert")
	fs.BoolVar(&c.H2C, "h2c", false, "also accept cleartext HTTP/2 (h2c, prior knowledge) besides HTTP/1.1, for a proxy in front that speaks it; not with -tls-cert")
	fs.StringVar(&c.PrivateTopics, "private-topics", "", "comma-separated topic `patterns` a stream may follow only with a token that grants them ('*' matches any run of characters, '/' included; empty: every topic is public)")
	fs.StringVar(&c.JWTKey, "jwt-key", "", "HMAC `secret` (at least 32 bytes) that HS256 tokens are verified with and `crier token` signs with; prefer CRIER_JWT_KEY, which ps does not show")
	fs.StringVar(&c.JWTPublicKey, "jwt-public-key", "", "`path` of a PEM RSA or ECDSA public key that RS256 or ES256 tokens are verified with")
	fs.StringVar(&c.JWTAudience, "jwt-audience", "", "when set, a token's aud claim must list this `audience` (empty: aud is not checked)")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", "", "when set, a token's iss claim must equal this `issuer` (empty: iss is not checked)")
	fs.IntVar(&c.MaxStreamsPerIP, "max-streams-per-ip", 0, "open streams allowed from one client IP address; more get 429 (0: no cap; behind a proxy every client shares the proxy's address)")
	fs.DurationVar(&c.HeaderTimeout, "header-timeout", 10*time.Second, "time a client has to send a request's headers; a slower one is disconnected")
	fs.StringVar(&c.WebhookURL, "webhook-url", "", "http(s) `URL` that crier POSTs batches of connect, disconnect, join and leave events to, for the application's backend (empty: no webhooks); needs -webhook-secret")
	fs.StringVar(&c.WebhookSecret, "webhook-secret", "", "`key` of the HMAC-SHA256 in every webhook request's X-Crier-Signature header; required with -webhook-url; prefer CRIER_WEBHOOK_SECRET, which ps does not show")
	fs.Usage = func() {} // the flag package calls it on every error: no usage dump then

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout, fs)
			return nil, nil, errHelp
		}
		return nil, nil, err
	}
	if err := applyEnv(fs, getenv); err != nil {
		return nil, nil, err
	}
	if err := c.validate(); err != nil {
		return nil, nil, err
	}
	return c, fs.Args(), nil
}

// applyEnv sets every flag not given on the command line from its CRIER_* variable.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name := envName(f.Name)
		if v := getenv(name); v != "" {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("invalid value %q for %s (flag -%s): %v", v, name, f.Name, e)
			}
		}
	})
	return err
}

// envName maps a flag name to its environment variable: -max-subscribers is CRIER_MAX_SUBSCRIBERS.
func envName(flagName string) string {
	return "CRIER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (c *config) validate() error {
	bad := func(flag string, v any, why string) error {
		return fmt.Errorf("invalid value %q for flag -%s: %s", fmt.Sprint(v), flag, why)
	}
	if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		return bad("addr", c.Addr, "want host:port, such as :8080 or 127.0.0.1:8080")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"heartbeat", c.Heartbeat}, {"retry", c.Retry}, {"shutdown-timeout", c.ShutdownTimeout}, {"header-timeout", c.HeaderTimeout}, {"publish-wait", c.PublishWait}} {
		if d.v <= 0 {
			return bad(d.name, d.v, "must be a positive duration")
		}
	}
	switch {
	case c.ReconnectSpread < 0:
		return bad("reconnect-spread", c.ReconnectSpread, "must not be negative")
	case c.History < 0:
		return bad("history", c.History, "must not be negative")
	case c.HistoryTTL < 0:
		return bad("history-ttl", c.HistoryTTL, "must not be negative")
	case c.Buffer < 1:
		return bad("buffer", c.Buffer, "must be at least 1")
	case c.MaxSubscribers < 0:
		return bad("max-subscribers", c.MaxSubscribers, "must not be negative")
	case c.MaxStreamsPerIP < 0:
		return bad("max-streams-per-ip", c.MaxStreamsPerIP, "must not be negative")
	case c.MaxBody < 1:
		return bad("max-body", c.MaxBody, "must be at least 1 byte")
	}
	if strings.TrimSpace(c.CORSOrigins) == "" {
		return bad("cors-origins", c.CORSOrigins, "list at least one origin, or *")
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			return bad("redis-url", redactUserinfo(c.RedisURL), "want redis://host:port/db or rediss://host:port/db")
		}
	}
	if err := c.validateWebhook(bad); err != nil {
		return err
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return bad("log-level", c.LogLevel, err.Error())
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return bad("log-format", c.LogFormat, "want text or json")
	}
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		return bad("tls-key", c.TLSKey, "-tls-cert needs -tls-key")
	case c.TLSKey != "" && c.TLSCert == "":
		return bad("tls-cert", c.TLSCert, "-tls-key needs -tls-cert")
	case c.H2C && c.TLSCert != "":
		return bad("h2c", c.H2C, "h2c is cleartext HTTP/2; with -tls-cert, HTTP/2 is served over TLS already")
	}
	return c.validateAuth(bad)
}

// validateAuth parses -private-topics and -presence-topics and builds the token verifier. The secret is never
// echoed in an error.
func (c *config) validateAuth(bad func(string, any, string) error) error {
	var err error
	if c.private, err = auth.ParsePatterns(c.PrivateTopics); err != nil {
		return bad("private-topics", c.PrivateTopics, err.Error())
	}
	if c.rooms, err = auth.ParsePatterns(c.PresenceTopics); err != nil {
		return bad("presence-topics", c.PresenceTopics, err.Error())
	}
	keys := auth.Keys{Audience: c.JWTAudience, Issuer: c.JWTIssuer}
	if c.JWTKey != "" {
		if len(c.JWTKey) < auth.MinSecretLen {
			return fmt.Errorf("invalid value for flag -jwt-key (%d bytes, not shown): must be at least %d bytes",
				len(c.JWTKey), auth.MinSecretLen)
		}
		keys.Secret = []byte(c.JWTKey)
	}
	if c.JWTPublicKey != "" {
		data, err := os.ReadFile(c.JWTPublicKey)
		if err != nil {
			return bad("jwt-public-key", c.JWTPublicKey, "cannot read the file")
		}
		if keys.Public, err = auth.ParsePublicKey(data); err != nil {
			return bad("jwt-public-key", c.JWTPublicKey, err.Error())
		}
	}
	if keys.Secret == nil && keys.Public == nil {
		switch {
		case len(c.private) > 0:
			return bad("private-topics", c.PrivateTopics, "no key to verify tokens with: set -jwt-key or -jwt-public-key")
		case c.JWTAudience != "":
			return bad("jwt-audience", c.JWTAudience, "no key to verify tokens with: set -jwt-key or -jwt-public-key")
		case c.JWTIssuer != "":
			return bad("jwt-issuer", c.JWTIssuer, "no key to verify tokens with: set -jwt-key or -jwt-public-key")
		}
		return nil
	}
	if c.tokens, err = auth.NewVerifier(keys, nil); err != nil {
		// Only the public key can still be refused here (RSA too short, unsupported curve).
		return bad("jwt-public-key", c.JWTPublicKey, strings.TrimPrefix(err.Error(), "auth: "))
	}
	return nil
}

// validateWebhook checks that -webhook-url and -webhook-secret come together. The secret
// is never echoed.
func (c *config) validateWebhook(bad func(string, any, string) error) error {
	switch {
	case c.WebhookURL == "" && c.WebhookSecret != "":
		return errors.New("flag -webhook-secret is set without -webhook-url: give both, or neither")
	case c.WebhookURL == "":
		return nil
	case c.WebhookSecret == "":
		return bad("webhook-url", c.WebhookURL, "needs -webhook-secret, the key its requests are signed with")
	case webhook.CheckURL(c.WebhookURL) != nil:
		return bad("webhook-url", c.WebhookURL, "want an http:// or https:// URL")
	}
	return nil
}

// redactUserinfo hides whatever precedes the last '@' of a URL that may not parse (so
// url.URL.Redacted cannot be used): it may hold a password.
func redactUserinfo(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	start := strings.Index(s, "://") + len("://")
	if start < len("://") || start > at {
		start = 0
	}
	return s[:start] + "REDACTED" + s[at:]
}

// tls reports whether crier serves HTTPS.
func (c *config) tls() bool { return c.TLSCert != "" }

// tlsConfig loads the certificate and key named by -tls-cert and -tls-key; nil without TLS.
// It runs at start-up, so a file that cannot be read is reported before serving.
func (c *config) tlsConfig() (*tls.Config, error) {
	if !c.tls() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("invalid value %q for flag -tls-cert (with -tls-key %q): %v", c.TLSCert, c.TLSKey, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// origins splits -cors-origins.
func (c *config) origins() []string {
	var out []string
	for _, o := range strings.Split(c.CORSOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// ensureToken makes up a publish token when none was configured.
func (c *config) ensureToken() {
	if c.PublishToken != "" {
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	c.PublishToken = hex.EncodeToString(b[:])
	c.tokenGenerated = true
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, errors.New("want debug, info, warn or error")
}

// size is a byte count with an optional KiB or MiB suffix.
type size int64

func (s *size) String() string {
	switch v := int64(*s); {
	case v != 0 && v%(1<<20) == 0:
		return strconv.FormatInt(v>>20, 10) + "MiB"
	case v != 0 && v%(1<<10) == 0:
		return strconv.FormatInt(v>>10, 10) + "KiB"
	default:
		return strconv.FormatInt(v, 10)
	}
}

func (s *size) Set(v string) error {
	num, mult := v, int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(v, suffix) {
			num, mult = strings.TrimSuffix(v, suffix), m
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil {
		return errors.New("want a number of bytes with an optional KiB or MiB suffix, such as 65536 or 1MiB")
	}
	if n < 0 {
		return errors.New("must not be negative")
	}
	if n > (1<<62)/mult {
		return errors.New("too large")
	}
	*s = size(n * mult)
	return nil
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `crier: a Server-Sent Events notification service.

Usage:
  crier [flags]              serve the page, /crier.js, /events, /publish, /history, /presence,
                             /healthz, /readyz, /metrics
  crier [flags] healthcheck  request /healthz on -addr; exit 0 on 200, 1 otherwise
  crier token [token flags]  print a token signed with -jwt-key (crier token -h for its flags)

Every flag can also be set with an environment variable: CRIER_ and the flag name in
upper snake case (-max-subscribers is CRIER_MAX_SUBSCRIBERS). A flag given on the
command line wins. Durations are Go durations (15s, 1m); sizes are bytes with an
optional KiB/MiB suffix (65536, 1MiB).

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprintln(w, "\nEach flag's variable:")
	fs.VisitAll(func(f *flag.Flag) { fmt.Fprintf(w, "  -%-18s %s\n", f.Name, envName(f.Name)) })
}
