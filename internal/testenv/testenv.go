// Package testenv starts real crier processes and finds the real tools that crier's
// end-to-end tests need (redis-server, Chromium, Docker, nginx).
//
// Locally a missing tool skips the test; with CI=true it fails it, so a CI run can never
// pass by skipping.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// CI reports whether the tests run in CI, where nothing may be skipped.
func CI() bool { return os.Getenv("CI") == "true" }

// Tool returns the path of the named executable. When it is missing the test is skipped,
// or failed under CI.
func Tool(t testing.TB, name string, alternatives ...string) string {
	t.Helper()
	for _, n := range append([]string{name}, alternatives...) {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
			if p := filepath.Join(dir, n); isExecutable(p) {
				return p
			}
		}
	}
	Missing(t, "%s is not installed (run scripts/deps.sh)", name)
	return ""
}

// Missing skips the test locally and fails it under CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Root is the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var build struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// Binary builds crier once per test process and returns the path of the executable.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "crier-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "crier")
		cmd := exec.Command("go", "build", "-o", build.path, ".")
		cmd.Dir = Root()
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("go build: %v\n%s", build.err, build.out)
	}
	return build.path
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Process is a crier process started by Start.
type Process struct {
	Addr string // host:port it listens on
	URL  string // http://Addr
	Cmd  *exec.Cmd

	mu     sync.Mutex
	output bytes.Buffer
	done   chan struct{}
	err    error
}

// Output returns what the process wrote to stdout and stderr so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

func (p *Process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.Write(b)
}

// Start runs crier with args (and extra environment entries such as "CRIER_HISTORY=5")
// on a free loopback port, waits until /healthz answers, and stops it when the test ends.
func Start(t testing.TB, args []string, env ...string) *Process {
	t.Helper()
	addr := FreeAddr(t)
	return StartAt(t, addr, args, env...)
}

// StartAt is Start on a given address, for restarting a node on the port it had.
func StartAt(t testing.TB, addr string, args []string, env ...string) *Process {
	t.Helper()
	p := &Process{Addr: addr, URL: "http://" + addr, done: make(chan struct{})}
	p.Cmd = exec.Command(Binary(t), append([]string{"-addr", addr}, args...)...)
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout = p
	p.Cmd.Stderr = p
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start crier: %v", err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("crier %s output:\n%s", addr, p.Output())
		}
	})
	// A client of its own, whose connection is closed afterwards: left in the shared
	// pool, it races a test's first request, which may then dial a second connection
	// that never sends a request and holds up the server's shutdown for 5 seconds.
	probe := &http.Client{Transport: &http.Transport{}}
	defer probe.CloseIdleConnections()
	WaitOK(t, probe, p.URL+"/healthz", 20*time.Second, func() string {
		select {
		case <-p.done:
			return fmt.Sprintf("crier exited before serving: %v\n%s", p.err, p.Output())
		default:
			return ""
		}
	})
	return p
}

// Signal sends sig to the process; it does nothing once the process has exited.
func (p *Process) Signal(sig os.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.Cmd.Process.Signal(sig)
	}
}

// Wait waits for the process to exit, at most for d, and returns its exit code.
func (p *Process) Wait(d time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode(), nil
	case <-ctx.Done():
		return -1, fmt.Errorf("crier still running after %s", d)
	}
}
