// Package docker_test builds crier's image with the real Docker engine, runs it, and checks
// what the contract promises of it: the page and the stream are served, the HEALTHCHECK
// turns healthy, the process is not root, the image is small and holds nothing but the
// binary and its few files, and `docker stop` ends open streams and exits 0 in time.
package docker_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crierhq/crier/internal/testenv"
)

const (
	buildImage      = "golang:1.27.3-bookworm" // the Dockerfile's build stage
	maxImageSize    = 20_000_000               // bytes
	shutdownTimeout = 5 * time.Second
	// stopBudget is how long `docker stop` may take: the shutdown timeout plus a margin
	// for the engine. Docker's own kill deadline (-t 15) is well beyond it, so a slow stop
	// is seen as slow rather than hidden by a SIGKILL.
	stopBudget = shutdownTimeout + time.Second
)

func TestImage(t *testing.T) {
	d := newDocker(t)
	id := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	image := "crier-test:" + id
	name := "crier-test-" + id

	start := time.Now()
	d.build(image)
	t.Logf("docker build: %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() { d.runQuiet(time.Minute, "image", "rm", "-f", image) })

	checkConfig(t, d, image)

	addr := testenv.FreeAddr(t)
	base := "http://" + addr
	start = time.Now()
	d.mustRun(time.Minute, "run", "-d", "--network", "host",
		"-e", "CRIER_ADDR="+addr,
		"-e", "CRIER_SHUTDOWN_TIMEOUT="+shutdownTimeout.String(),
		// The image's interval is 30s; a test should not wait that long.
		"--health-interval=1s", "--health-timeout=3s", "--health-retries=3",
		"--name", name, image)
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := d.run(30*time.Second, "logs", name)
			t.Logf("container logs:\n%s", logs)
		}
		d.runQuiet(time.Minute, "rm", "-f", name)
	})

	waitServing(t, d, name, base)
	t.Logf("serving after %s", time.Since(start).Round(time.Millisecond))

	checkPage(t, base)

	stream := openStream(t, base)
	if err := stream.waitFor("new_user", 10*time.Second); err != nil {
		t.Fatalf("GET /events: %v", err)
	}

	healthy := waitHealthy(t, d, name, 30*time.Second)
	t.Logf("healthy after %s", healthy.Sub(start).Round(time.Millisecond))

	checkUser(t, d, name)

	stopStart := time.Now()
	d.mustRun(stopBudget+20*time.Second, "stop", "-t", "15", name)
	stopped := time.Since(stopStart)
	t.Logf("docker stop with an open stream: %s", stopped.Round(time.Millisecond))
	if stopped > stopBudget {
		t.Errorf("docker stop took %s, want under %s (CRIER_SHUTDOWN_TIMEOUT=%s)", stopped, stopBudget, shutdownTimeout)
	}
	state := d.mustRun(30*time.Second, "inspect", "-f", "{{.State.ExitCode}} {{.State.OOMKilled}}", name)
	t.Logf("exit code, OOM killed: %s", state)
	if state != "0 false" {
		t.Errorf("after docker stop: exit code and OOMKilled = %q, want \"0 false\"", state)
	}
	if err := stream.waitEnd(5 * time.Second); err != nil {
		t.Errorf("open stream during docker stop: %v", err)
	}

	checkFiles(t, d, name)
}

// checkConfig checks the image's size and metadata.
func checkConfig(t *testing.T, d *docker, image string) {
	t.Helper()
	out := d.mustRun(30*time.Second, "image", "inspect", "-f", "{{.Size}}", image)
	size, err := strconv.ParseInt(out, 10, 64)
	if err != nil {
		t.Fatalf("image size %q: %v", out, err)
	}
	t.Logf("image size: %d bytes (%.1f MB)", size, float64(size)/1e6)
	if size >= maxImageSize {
		t.Errorf("image size = %d bytes, want under %d", size, maxImageSize)
	}

	tests := []struct {
		format, want string
	}{
		{"{{json .Config.Entrypoint}}", `["/crier"]`},
		{"{{if .Config.Healthcheck}}{{json .Config.Healthcheck.Test}}{{end}}", `["CMD","/crier","healthcheck"]`},
		{"{{.Config.StopSignal}}", "SIGTERM"},
		{"{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}", "8080/tcp"},
	}
	for _, tt := range tests {
		if got := d.mustRun(30*time.Second, "image", "inspect", "-f", tt.format, image); got != tt.want {
			t.Errorf("image %s = %s, want %s", tt.format, got, tt.want)
		}
	}
	user := d.mustRun(30*time.Second, "image", "inspect", "-f", "{{.Config.User}}", image)
	if !nonRoot(user) {
		t.Errorf("image USER = %q, want a non-root user", user)
	}
}

// nonRoot reports whether a Docker USER value ("name", "uid", "uid:gid") names a user
// other than root. An empty USER means root.
func nonRoot(user string) bool {
	u, g, _ := strings.Cut(user, ":")
	return u != "" && u != "0" && u != "root" && g != "0" && g != "root"
}

// waitServing waits until /healthz answers 200, failing early if the container exits.
func waitServing(t *testing.T, d *docker, name, base string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	testenv.WaitOK(t, client, base+"/healthz", 20*time.Second, func() string {
		if d.mustRun(30*time.Second, "inspect", "-f", "{{.State.Running}}", name) != "true" {
			return "container exited before serving"
		}
		return ""
	})
}

// waitHealthy polls Docker's own view of the HEALTHCHECK and returns when it is healthy.
func waitHealthy(t *testing.T, d *docker, name string, within time.Duration) time.Time {
	t.Helper()
	health := func() string { return d.mustRun(30*time.Second, "inspect", "-f", "{{json .State.Health}}", name) }
	err := testenv.Poll(within, func() error {
		switch status := d.mustRun(30*time.Second, "inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", name); status {
		case "healthy":
			return nil
		case "unhealthy":
			t.Fatalf("container is unhealthy: %s", health())
		case "":
			t.Fatalf("container has no health state: the image has no HEALTHCHECK")
		default:
			return fmt.Errorf("container still %q", status)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v after %s: %s", err, within, health())
	}
	return time.Now()
}

// checkUser checks that the container's process runs as a user other than root, both as
// configured and, where the engine runs on this host, as the kernel sees it.
func checkUser(t *testing.T, d *docker, name string) {
	t.Helper()
	user := d.mustRun(30*time.Second, "inspect", "-f", "{{.Config.User}}", name)
	if !nonRoot(user) {
		t.Errorf("container user = %q, want a non-root user", user)
	}
	pid := d.mustRun(30*time.Second, "inspect", "-f", "{{.State.Pid}}", name)
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Logf("cannot read the process's status (engine on another host?): %v", err)
		return
	}
	for line := range strings.Lines(string(status)) {
		if f := strings.Fields(line); len(f) >= 2 && (f[0] == "Uid:" || f[0] == "Gid:") {
			t.Logf("container process %s %s", f[0], strings.Join(f[1:], " "))
			for _, id := range f[1:] {
				if id == "0" {
					t.Errorf("container process runs with %s", strings.TrimSpace(line))
					break
				}
			}
		}
	}
}

var assetRef = regexp.MustCompile(`(?:src|href)="(/static/[^"?#]+)`)

// checkPage fetches the page and every /static asset it references, and looks for the
// EventSource the page must be built on.
func checkPage(t *testing.T, base string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(p string) (string, string) {
		resp, err := client.Get(base + p)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: reading body: %v", p, err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d, want 200", p, resp.StatusCode)
		}
		return resp.Header.Get("Content-Type"), string(body)
	}

	ct, page := get("/")
	if !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET /: Content-Type %q, want text/html", ct)
	}
	sources := page
	seen := map[string]bool{}
	for _, m := range assetRef.FindAllStringSubmatch(page, -1) {
		if seen[m[1]] {
			continue
		}
		seen[m[1]] = true
		ct, body := get(m[1])
		t.Logf("GET %s: %s, %d bytes", m[1], ct, len(body))
		sources += body
	}
	if len(seen) == 0 {
		t.Logf("the page references no /static assets")
	}
	if !strings.Contains(sources, "EventSource") {
		t.Errorf("neither the page nor its /static assets use EventSource")
	}
}

// stream is an open GET /events whose lines a goroutine reads until the stream ends.
type stream struct {
	events chan string // the event: name of each event, in order
	done   chan error  // the read error that ended the stream (io.EOF for a clean end)
}

func openStream(t *testing.T, base string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	// No client timeout: the stream is meant to stay open. Each wait below has its own.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /events: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /events: status %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("GET /events: Content-Type %q, want text/event-stream", ct)
	}
	s := &stream{events: make(chan string, 100), done: make(chan error, 1)}
	go func() {
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		event := ""
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				s.done <- err
				return
			}
			line = strings.TrimRight(line, "\r\n")
			switch {
			case line == "":
				if event != "" {
					select {
					case s.events <- event:
					default: // nobody is waiting for more; keep reading to the end
					}
				}
				event = ""
			case strings.HasPrefix(line, "event:"):
				event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// waitFor reads events until one named name arrives.
func (s *stream) waitFor(name string, within time.Duration) error {
	timeout := time.After(within)
	for {
		select {
		case e := <-s.events:
			if e == name {
				return nil
			}
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("stream ended (%v) before an %q event", err, name)
		case <-timeout:
			return fmt.Errorf("no %q event within %s", name, within)
		}
	}
}

// waitEnd waits for the server to end the stream and wants a clean end: the terminating
// chunk (io.EOF), not a cut connection.
func (s *stream) waitEnd(within time.Duration) error {
	select {
	case err := <-s.done:
		s.done <- err
		if !errors.Is(err, io.EOF) {
			return fmt.Errorf("stream ended with %v, want a clean end (EOF)", err)
		}
		return nil
	case <-time.After(within):
		return fmt.Errorf("stream still open %s after the container stopped", within)
	}
}

// checkFiles exports the stopped container's filesystem and checks that the image added
// nothing but the binary, the CA bundle and the files that name its user.
func checkFiles(t *testing.T, d *docker, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.path, "export", name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("docker export: %v", err)
	}
	want := map[string]bool{
		"crier":                             true,
		"etc/passwd":                        true,
		"etc/group":                         true,
		"etc/nsswitch.conf":                 true,
		"etc/ssl/certs/ca-certificates.crt": true,
	}
	// What the engine itself puts into every container's filesystem.
	engine := map[string]bool{
		".dockerenv": true, "etc/hosts": true, "etc/hostname": true,
		"etc/resolv.conf": true, "etc/mtab": true,
	}
	tr := tar.NewReader(out)
	var extra []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("docker export: reading the archive: %v", err)
		}
		p := path.Clean(strings.TrimPrefix(h.Name, "./"))
		top, _, _ := strings.Cut(p, "/")
		switch {
		case h.Typeflag == tar.TypeDir,
			top == "dev" || top == "proc" || top == "sys",
			engine[p]:
		case want[p]:
			delete(want, p)
			if p == "crier" {
				if h.Mode&0o111 == 0 {
					t.Errorf("/crier has mode %v, want executable", h.FileInfo().Mode())
				}
				checkGoVersion(t, tr)
			}
		default:
			extra = append(extra, p)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("docker export: %v: %s", err, stderr.Bytes())
	}
	if len(extra) > 0 {
		t.Errorf("the image holds files it does not need: %s", strings.Join(extra, ", "))
	}
	for p := range want {
		t.Errorf("the image lacks /%s", p)
	}
}

// checkGoVersion checks that the binary was built with the Go that go.mod pins, not with
// whatever Go the build stage's image happened to have.
func checkGoVersion(t *testing.T, binary io.Reader) {
	t.Helper()
	data, err := io.ReadAll(binary)
	if err != nil {
		t.Fatalf("docker export: reading /crier: %v", err)
	}
	info, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("/crier: %v", err)
	}
	if want := pinnedGo(t); info.GoVersion != want {
		t.Errorf("/crier was built with %s, want %s (go.mod)", info.GoVersion, want)
	}
}

// pinnedGo returns the toolchain go.mod names: its toolchain line, else its go line.
func pinnedGo(t *testing.T) string {
	t.Helper()
	mod, err := os.ReadFile(filepath.Join(testenv.Root(), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var pinned string
	for _, line := range strings.Split(string(mod), "\n") {
		if v, ok := strings.CutPrefix(line, "toolchain "); ok {
			return strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "go "); ok {
			pinned = "go" + strings.TrimSpace(v)
		}
	}
	if pinned == "" {
		t.Fatal("go.mod has no go line")
	}
	return pinned
}

// docker runs the docker CLI.
type docker struct {
	t    *testing.T
	path string
}

// newDocker finds the docker CLI and checks that it reaches an engine; either missing
// skips the test locally and fails it under CI.
func newDocker(t *testing.T) *docker {
	t.Helper()
	d := &docker{t: t, path: testenv.Tool(t, "docker")}
	if out, err := d.run(30*time.Second, "info", "--format", "{{.ServerVersion}}"); err != nil {
		testenv.Missing(t, "no Docker engine (run scripts/deps.sh): %v", err)
	} else {
		t.Logf("Docker engine %s", out)
	}
	return d
}

// build builds the image from the repository root. Layers come from the engine's cache
// when nothing changed, so a rerun is fast even though the tag is new.
func (d *docker) build(image string) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.path, "build", "--network", "host", "-t", image, ".")
	cmd.Dir = testenv.Root()
	out, err := cmd.CombinedOutput()
	if err != nil {
		hint := ""
		if _, ierr := d.run(30*time.Second, "image", "inspect", buildImage); ierr != nil {
			hint = "\n(" + buildImage + " is not present and no registry may be reachable: run scripts/deps.sh)"
		}
		d.t.Fatalf("docker build: %v\n%s%s", err, out, hint)
	}
}

// run runs docker with args, bounded by timeout, and returns its trimmed stdout.
func (d *docker) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, d.path, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// mustRun is run that fails the test on an error.
func (d *docker) mustRun(timeout time.Duration, args ...string) string {
	d.t.Helper()
	out, err := d.run(timeout, args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// runQuiet is run for cleanups: an error is only logged.
func (d *docker) runQuiet(timeout time.Duration, args ...string) {
	if _, err := d.run(timeout, args...); err != nil {
		d.t.Logf("cleanup: %v", err)
	}
}
