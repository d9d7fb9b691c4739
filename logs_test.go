package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crierhq/crier/internal/testenv"
)

// TestLogFormats runs the real binary with each -log-format and reads its lines back:
// every line parses, and a stream and a publish leave the lines operators rely on.
func TestLogFormats(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			p := testenv.Start(t, []string{"-log-format", format, "-log-level", "debug", "-publish-token", "tok"})

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/events?topic=orders", nil)
			req.Header.Set("X-Request-Id", "rid-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(resp.Body)
			waitFor := func(line string) {
				for sc.Scan() {
					if sc.Text() == line {
						return
					}
				}
				t.Fatalf("stream ended before %q", line)
			}
			waitFor("event: new_user")

			pub, _ := http.NewRequest(http.MethodPost, p.URL+"/publish",
				strings.NewReader(`{"topic":"orders","event":"shipped","data":1}`))
			pub.Header.Set("Authorization", "Bearer tok")
			pub.Header.Set("Content-Type", "application/json")
			pub.Header.Set("X-Request-Id", "rid-pub")
			presp, err := http.DefaultClient.Do(pub)
			if err != nil || presp.StatusCode != http.StatusOK {
				t.Fatalf("publish: %v %v", presp, err)
			}
			presp.Body.Close()
			waitFor("event: shipped")
			cancel()
			resp.Body.Close()

			testenv.Eventually(t, 5*time.Second, func() error {
				if !strings.Contains(p.Output(), "stream closed") {
					return errors.New("no stream closed line logged")
				}
				return nil
			})
			p.Signal(syscall.SIGTERM)
			if code, err := p.Wait(10 * time.Second); code != 0 || err != nil {
				t.Fatalf("exit %d, %v", code, err)
			}

			var records []map[string]string
			for _, line := range strings.Split(strings.TrimSpace(p.Output()), "\n") {
				rec, err := parseLogLine(format, line)
				if err != nil {
					t.Fatalf("%s line %q: %v", format, line, err)
				}
				for _, k := range []string{"time", "level", "msg"} {
					if rec[k] == "" {
						t.Fatalf("%s line %q has no %s", format, line, k)
					}
				}
				records = append(records, rec)
			}
			// find returns the first line with msg that has every key and value of want.
			find := func(msg string, want map[string]string) map[string]string {
				t.Helper()
			lines:
				for _, r := range records {
					if r["msg"] != msg {
						continue
					}
					for k, v := range want {
						if r[k] != v {
							continue lines
						}
					}
					return r
				}
				t.Errorf("no %q line with %v in:\n%s", msg, want, p.Output())
				return nil
			}
			find("crier listening", map[string]string{"level": "INFO"})
			find("stream opened", map[string]string{"level": "INFO", "request_id": "rid-stream", "topics": "orders"})
			closed := find("stream closed", map[string]string{"level": "INFO", "request_id": "rid-stream",
				"topics": "orders", "reason": "client went away", "events": "2"})
			find("published", map[string]string{"level": "DEBUG", "request_id": "rid-pub", "topic": "orders", "event": "shipped"})
			find("request", map[string]string{"level": "DEBUG", "request_id": "rid-pub", "path": "/publish", "status": "200"})
			find("stopped", map[string]string{"level": "INFO"})
			for _, k := range []string{"subscriber", "remote", "duration"} {
				if closed != nil && closed[k] == "" {
					t.Errorf("stream closed line has no %s", k)
				}
			}
			for _, r := range records {
				if r["msg"] == "request" && r["path"] == "/events" {
					t.Errorf("a stream got a request line besides its opened/closed lines: %v", r)
				}
			}
		})
	}
}

// parseLogLine reads one line of slog's JSON or text output into strings by key.
func parseLogLine(format, line string) (map[string]string, error) {
	rec := map[string]string{}
	if format == "json" {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return nil, err
		}
		for k, v := range m {
			rec[k] = fmt.Sprint(v)
		}
		return rec, nil
	}
	for s := line; s != ""; {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], ` "`) {
			return nil, fmt.Errorf("no key=value at %q", s)
		}
		key, rest := s[:eq], s[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, fmt.Errorf("bad quoting at %q", rest)
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			val, rest, _ = strings.Cut(rest, " ")
			rest = " " + rest
		}
		rec[key] = val
		if rest != "" && rest != " " && !strings.HasPrefix(rest, " ") {
			return nil, fmt.Errorf("no space after %s", key)
		}
		s = strings.TrimPrefix(rest, " ")
	}
	return rec, nil
}
