package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigDefaultsEnvAndFlags(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		check func(*config) bool
	}{
		{"defaults", nil, nil, func(c *config) bool {
			return c.Addr == ":8080" && c.CORSOrigins == "*" && c.Heartbeat == 15*time.Second &&
				c.Retry == 3*time.Second && c.History == 1000 && c.Buffer == 256 && c.MaxSubscribers == 0 &&
				c.Presence && c.MaxBody == 1<<20 && c.PublishToken == "" && c.RedisURL == "" &&
				c.ShutdownTimeout == 10*time.Second && c.LogFormat == "text" && c.LogLevel == "info" &&
				c.HistoryTTL == 0 && c.HistoryMemory == 256<<20 &&
				c.ReconnectSpread == 5*time.Second && c.PublishWait == 5*time.Second
		}},
		{"env", nil, map[string]string{
			"CRIER_MAX_SUBSCRIBERS": "5", "CRIER_PRESENCE": "false", "CRIER_MAX_BODY": "64KiB",
			"CRIER_HEARTBEAT": "1m", "CRIER_PUBLISH_TOKEN": "tok", "CRIER_CORS_ORIGINS": "https://a.example,https://b.example",
			"CRIER_REDIS_URL": "redis://127.0.0.1:6379/0", "CRIER_LOG_FORMAT": "json", "CRIER_RECONNECT_SPREAD": "0s",
			"CRIER_PUBLISH_WAIT": "250ms",
		}, func(c *config) bool {
			return c.ReconnectSpread == 0 && c.PublishWait == 250*time.Millisecond && c.MaxSubscribers == 5 && !c.Presence && c.MaxBody == 64<<10 && c.Heartbeat == time.Minute &&
				c.PublishToken == "tok" && len(c.origins()) == 2 && c.RedisURL != "" && c.LogFormat == "json"
		}},
		{"a flag wins over its variable", []string{"-history", "7", "-max-body", "2MiB"},
			map[string]string{"CRIER_HISTORY": "9", "CRIER_MAX_BODY": "1"},
			func(c *config) bool { return c.History == 7 && c.MaxBody == 2<<20 }},
		{"plain bytes", []string{"-max-body", "65536"}, nil, func(c *config) bool { return c.MaxBody == 65536 }},
		{"history 0", []string{"-history=0"}, nil, func(c *config) bool { return c.History == 0 }},
		{"history bounds", []string{"-history-ttl", "1h"}, map[string]string{"CRIER_HISTORY_MEMORY": "512KiB", "CRIER_HISTORY_TTL": "1m"},
			func(c *config) bool { return c.HistoryTTL == time.Hour && c.HistoryMemory == 512<<10 }},
		{"rooms", nil, map[string]string{"CRIER_PRESENCE_TOPICS": "room/*, lobby"}, func(c *config) bool {
			return c.rooms.String() == "room/*,lobby" && c.rooms.Match("room/1") && !c.rooms.Match("news")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, rest, err := parseConfig(tc.args, env(tc.env), &bytes.Buffer{})
			if err != nil || len(rest) != 0 {
				t.Fatalf("parseConfig: %v (rest %v)", err, rest)
			}
			if !tc.check(c) {
				t.Errorf("config %+v", *c)
			}
		})
	}
}

func TestBadValuesExit2WithOneLine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		mention string // the flag or variable the line must name
		value   string
	}{
		{"unparsable duration", []string{"-heartbeat", "soon"}, nil, "-heartbeat", "soon"},
		{"negative duration", []string{"-retry", "-1s"}, nil, "-retry", "-1s"},
		{"negative reconnect spread", []string{"-reconnect-spread", "-2s"}, nil, "-reconnect-spread", "-2s"},
		{"zero shutdown timeout", []string{"-shutdown-timeout", "0s"}, nil, "-shutdown-timeout", "0s"},
		{"negative size", []string{"-max-body", "-5"}, nil, "-max-body", "-5"},
		{"unknown size suffix", []string{"-max-body", "1MB"}, nil, "-max-body", "1MB"},
		{"negative history", []string{"-history", "-1"}, nil, "-history", "-1"},
		{"zero buffer", []string{"-buffer", "0"}, nil, "-buffer", "0"},
		{"negative history ttl", []string{"-history-ttl", "-1m"}, nil, "-history-ttl", "-1m"},
		{"history memory in MB", []string{"-history-memory", "10MB"}, nil, "-history-memory", "10MB"},
		{"negative history memory variable", nil, map[string]string{"CRIER_HISTORY_MEMORY": "-1"}, "CRIER_HISTORY_MEMORY", "-1"},
		{"zero publish wait", []string{"-publish-wait", "0s"}, nil, "-publish-wait", "0s"},
		{"not a number", []string{"-max-subscribers", "many"}, nil, "-max-subscribers", "many"},
		{"not a bool", []string{"-presence=maybe"}, nil, "-presence", "maybe"},
		{"unknown log format", []string{"-log-format", "xml"}, nil, "-log-format", "xml"},
		{"unknown log level", []string{"-log-level", "loud"}, nil, "-log-level", "loud"},
		{"bad address", []string{"-addr", "nowhere"}, nil, "-addr", "nowhere"},
		{"bad redis url", []string{"-redis-url", "http://x"}, nil, "-redis-url", "http://x"},
		// A malformed URL is echoed without what precedes its '@': it may be a password.
		{"redis url with a password and no host", []string{"-redis-url", "redis://:hunter2@"}, nil, "-redis-url", "redis://REDACTED@"},
		{"redis url with a password that does not parse", []string{"-redis-url", "redis://u:hunter2@h:port/0"}, nil, "-redis-url", "redis://REDACTED@h:port/0"},
		{"redis url with a password and a bad scheme", nil, map[string]string{"CRIER_REDIS_URL": "http://:hunter2@x/y@z"}, "-redis-url", "http://REDACTED@z"},
		{"redis url with a password and no scheme", []string{"-redis-url", ":hunter2@x"}, nil, "-redis-url", "REDACTED@x"},
		{"audience without a key", []string{"-jwt-audience", "crier"}, nil, "-jwt-audience", "crier"},
		{"issuer without a key", nil, map[string]string{"CRIER_JWT_ISSUER": "https://id"}, "-jwt-issuer", "https://id"},
		{"unknown flag", []string{"-colour"}, nil, "-colour", ""},
		{"bad variable", nil, map[string]string{"CRIER_HEARTBEAT": "often"}, "CRIER_HEARTBEAT", "often"},
		{"negative size variable", nil, map[string]string{"CRIER_MAX_BODY": "-1KiB"}, "CRIER_MAX_BODY", "-1KiB"},
		{"stray argument", []string{"serve"}, nil, "serve", ""},
		{"webhook url without secret", []string{"-webhook-url", "http://backend/hook"}, nil, "-webhook-secret", "http://backend/hook"},
		{"webhook secret without url", nil, map[string]string{"CRIER_WEBHOOK_SECRET": "s3cret"}, "-webhook-url", ""},
		{"webhook url not http", []string{"-webhook-url", "ftp://backend/hook", "-webhook-secret", "s3cret"}, nil, "-webhook-url", "ftp://backend/hook"},
		{"webhook url not absolute", nil, map[string]string{"CRIER_WEBHOOK_URL": "backend/hook", "CRIER_WEBHOOK_SECRET": "s3cret"}, "-webhook-url", "backend/hook"},
		{"control character in a room pattern", []string{"-presence-topics", "room/\x01"}, nil, "-presence-topics", "room/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, env(tc.env), &stdout, &stderr)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, stderr.String())
			}
			line := stderr.String()
			if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
				t.Errorf("stderr is not one line: %q", line)
			}
			if !strings.Contains(line, tc.mention) || !strings.Contains(line, tc.value) {
				t.Errorf("stderr %q does not name %s and %q", line, tc.mention, tc.value)
			}
			if strings.Contains(line, "s3cret") || strings.Contains(line, "hunter2") {
				t.Errorf("stderr shows a secret: %q", line)
			}
			if stdout.Len() != 0 {
				t.Errorf("a usage dump went to stdout: %q", stdout.String())
			}
		})
	}
}

func TestHelpExplainsEveryFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, env(nil), &stdout, &stderr); code != 0 {
		t.Fatalf("-h exit %d", code)
	}
	for _, want := range []string{"-addr", "-cors-origins", "-heartbeat", "-retry", "-history", "-history-ttl", "-history-memory", "CRIER_HISTORY_MEMORY", "-buffer", "-publish-wait",
		"-max-subscribers", "-presence", "-max-body", "-publish-token", "-redis-url", "-shutdown-timeout",
		"-log-format", "-log-level", "CRIER_MAX_SUBSCRIBERS", "healthcheck", "-reconnect-spread",
		"-private-topics", "-presence-topics", "CRIER_PRESENCE_TOPICS", "/presence", "-jwt-key", "-jwt-public-key", "CRIER_JWT_KEY", "token",
		"-jwt-audience", "CRIER_JWT_AUDIENCE", "-jwt-issuer", "CRIER_JWT_ISSUER",
		"-webhook-url", "-webhook-secret", "CRIER_WEBHOOK_URL", "CRIER_WEBHOOK_SECRET", "X-Crier-Signature"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("-h output lacks %s", want)
		}
	}
}

func TestSizeRoundTrip(t *testing.T) {
	for _, in := range []string{"1MiB", "64KiB", "65537", "0"} {
		var s size
		if err := s.Set(in); err != nil {
			t.Fatalf("Set(%q): %v", in, err)
		}
		if got := s.String(); got != in {
			t.Errorf("Set(%q).String() = %q", in, got)
		}
	}
}
