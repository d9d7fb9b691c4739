// Package nginx_test runs crier behind a real nginx, configured as the README says, and
// checks that each event passes through the proxy the moment it is published (not when
// the stream ends or a buffer fills) and that a client can resume through it.
package nginx_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crierhq/crier/internal/testenv"
)

// locations is the proxying part of the README's nginx configuration.
const locations = `
    location / {
        proxy_pass http://crier;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }

    location = /events {
        proxy_pass http://crier;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header Last-Event-ID $http_last_event_id;
        proxy_buffering off;
        proxy_cache off;
        gzip off;
        proxy_read_timeout 1h;
        proxy_send_timeout 1h;
    }
`

// startNginx runs nginx in the foreground on a free loopback port, proxying to upstream,
// with its configuration, logs, pid and temporary files in a temporary directory. It
// returns the proxy's base URL and stops nginx when the test ends.
func startNginx(t *testing.T, upstream string) string {
	t.Helper()
	bin := testenv.Tool(t, "nginx")
	dir := t.TempDir()
	addr := testenv.FreeAddr(t)
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers would otherwise run as nobody, shut out of dir
	}
	conf := fmt.Sprintf(`
%[1]s
worker_processes 1;
error_log %[2]s/error.log info;
pid %[2]s/nginx.pid;
events { worker_connections 128; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;

    upstream crier {
        server %[3]s;
        keepalive 8;
    }
    server {
        listen %[4]s;
%[5]s
    }
}
`, user, dir, upstream, addr, locations)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nnginx error.log:\n%s", out, errLog)
		}
	})

	base := "http://" + addr
	testenv.WaitOK(t, client, base+"/healthz", 10*time.Second, func() string {
		select {
		case <-done:
			return fmt.Sprintf("nginx exited before serving:\n%s", out)
		default:
			return ""
		}
	})
	return base
}

// client bounds every wait, so a proxy that holds a response back fails the test in
// seconds instead of hanging it.
var client = &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 5 * time.Second}}

type event struct{ id, name, data string }

// stream opens GET url and delivers its events on a channel, closed when the stream ends.
func stream(t *testing.T, url string, header http.Header) (*http.Response, <-chan event) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	ch := make(chan event, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		var ev event
		for sc.Scan() {
			switch line := sc.Text(); {
			case line == "":
				if ev.name != "" {
					ch <- ev
				}
				ev = event{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[len("id: "):]
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[len("data: "):]
			}
		}
	}()
	return resp, ch
}

// next returns the next event that is not presence, failing the test when none arrives
// within d or the stream ends.
func next(t *testing.T, ch <-chan event, d time.Duration) event {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("the stream ended while an event was expected")
			}
			if ev.name != "new_user" && ev.name != "user_left" {
				return ev
			}
		case <-timeout:
			t.Fatalf("no event within %s: nginx holds it back", d)
		}
	}
}

func publish(t *testing.T, base, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/publish", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("publish through nginx: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish through nginx: %s %s", resp.Status, b)
	}
}

func TestBehindNginx(t *testing.T) {
	// A long heartbeat: nothing but the event itself may push it through the proxy.
	crier := testenv.Start(t, []string{"-publish-token", "tok", "-heartbeat", "1h"})
	base := startNginx(t, crier.Addr)

	resp, events := stream(t, base+"/events?topic=orders", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /events through nginx: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	// The stream's opening and its own new_user arrive at once too.
	select {
	case ev := <-events:
		if ev.name != "new_user" {
			t.Fatalf("first event %q, want new_user", ev.name)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the stream's new_user did not pass through nginx within 2s")
	}

	var ids []string
	for i := range 3 {
		publish(t, base, fmt.Sprintf(`{"topic":"orders","event":"shipped","data":%d}`, i))
		ev := next(t, events, time.Second)
		if ev.name != "shipped" || ev.data != fmt.Sprint(i) {
			t.Fatalf("event %d: %+v", i, ev)
		}
		ids = append(ids, ev.id)
	}

	// Last-Event-ID passes through: a second client resumes after the first event.
	_, resumed := stream(t, base+"/events?topic=orders", http.Header{"Last-Event-Id": {ids[0]}})
	for i, want := range ids[1:] {
		if ev := next(t, resumed, 2*time.Second); ev.id != want {
			t.Fatalf("resumed event %d: id %s, want %s", i, ev.id, want)
		}
	}
	// And the first stream is still open and live.
	publish(t, base, `{"data":"still there"}`)
	if ev := next(t, events, time.Second); ev.data != `"still there"` {
		t.Fatalf("after resume: %+v", ev)
	}
}
