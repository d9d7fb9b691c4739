package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crierhq/crier/internal/testenv"
)

func TestHealthcheckSubcommand(t *testing.T) {
	p := testenv.Start(t, nil)
	for _, args := range [][]string{
		{"healthcheck", "-addr", p.Addr},
		{"-addr", p.Addr, "healthcheck"},
	} {
		var stderr bytes.Buffer
		if code := run(context.Background(), args, env(nil), io.Discard, &stderr); code != 0 {
			t.Errorf("%v: exit %d, %s", args, code, stderr.String())
		}
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"healthcheck"}, env(map[string]string{"CRIER_ADDR": testenv.FreeAddr(t)}), io.Discard, &stderr); code != 1 {
		t.Errorf("healthcheck with nothing listening: exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "healthz") {
		t.Errorf("healthcheck failure says %q", stderr.String())
	}
}

// TestStrayArguments: anything after the flags but a subcommand (and its own arguments)
// is one stderr line and exit 2, before anything starts.
func TestStrayArguments(t *testing.T) {
	for _, args := range [][]string{
		{"serve"},
		{"-addr", "127.0.0.1:0", "serve"},
		{"healthcheck", "extra"},
		{"-addr", "127.0.0.1:0", "healthcheck", "extra"},
		{"healthcheck", "token"},
	} {
		var stderr bytes.Buffer
		code := run(context.Background(), args, env(nil), io.Discard, &stderr)
		if code != 2 || strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "unexpected argument") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one line", args, code, stderr.String())
		}
	}
}

// TestShutdown sends SIGTERM to a real crier with a stream open: the stream ends cleanly
// and the process exits 0 well within -shutdown-timeout, without waiting for a
// connection that never sent a request (a browser's preconnect), which net/http would
// count as busy for 5 seconds.
func TestShutdown(t *testing.T) {
	p := testenv.Start(t, []string{"-shutdown-timeout", "5s"})
	preconnect, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer preconnect.Close()
	resp, err := http.Get(p.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if line, _ := r.ReadString('\n'); line != "retry: 3000\n" {
		t.Fatalf("opening %q", line)
	}

	start := time.Now()
	p.Signal(syscall.SIGTERM)
	if _, err := io.ReadAll(r); err != nil {
		t.Errorf("the stream did not end cleanly: %v", err)
	}
	code, err := p.Wait(5 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("exit %d (%v) after SIGTERM, want 0\n%s", code, err, p.Output())
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %s, longer than -shutdown-timeout", took)
	}
	if !strings.Contains(p.Output(), "shutting down") {
		t.Errorf("no shutdown log line:\n%s", p.Output())
	}
	if strings.Contains(p.Output(), "shutdown timed out") {
		t.Errorf("the shutdown waited for its timeout:\n%s", p.Output())
	}
}

func TestGeneratedTokenIsLoggedOnce(t *testing.T) {
	p := testenv.Start(t, nil)
	out := p.Output()
	i := strings.Index(out, "publish_token=")
	if i < 0 || strings.Count(out, "publish_token=") != 1 {
		t.Fatalf("want one publish_token= line, got:\n%s", out)
	}
	token := strings.Fields(out[i+len("publish_token="):])[0]
	if status := publishText(t, p.URL+"/publish", token, "hi"); status != http.StatusOK {
		t.Errorf("publish with the logged token: %d", status)
	}
}

// publishText posts body as text/plain to url with token and returns the status.
func publishText(t *testing.T, url, token, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestMetricsAddrServesMetricsOffTheMainListener(t *testing.T) {
	metricsAddr := testenv.FreeAddr(t)
	p := testenv.Start(t, []string{"-metrics-addr", metricsAddr})
	for _, tc := range []struct {
		url  string
		want int
	}{
		{"http://" + metricsAddr + "/metrics", http.StatusOK},
		{p.URL + "/metrics", http.StatusNotFound},
		{"http://" + metricsAddr + "/events", http.StatusNotFound},
	} {
		resp, err := http.Get(tc.url)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s: %d, want %d", tc.url, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusOK && !strings.Contains(string(body), "crier_subscribers") {
			t.Errorf("GET %s: no crier metrics in\n%.300s", tc.url, body)
		}
	}
	p.Signal(syscall.SIGTERM)
	if code, err := p.Wait(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit %d (%v) after SIGTERM, want 0\n%s", code, err, p.Output())
	}
	if _, err := net.Dial("tcp", metricsAddr); err == nil {
		t.Errorf("-metrics-addr %s still accepts connections after the exit", metricsAddr)
	}
}
