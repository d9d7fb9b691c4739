package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redis is a redis-server started for one test on a free loopback port, with its data in
// a temporary directory. It persists to an append-only file (fsync every second, and on
// a clean stop), so Stop then Start keeps the data, as a production Redis with AOF would.
type Redis struct {
	Addr string // host:port
	URL  string // redis://Addr/0

	t    testing.TB
	path string
	dir  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  bytes.Buffer
}

// StartRedis starts redis-server (skipping the test locally, failing it under CI, when
// it is not installed) and stops it when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{t: t, path: Tool(t, "redis-server"), dir: t.TempDir(), Addr: FreeAddr(t)}
	r.URL = "redis://" + r.Addr + "/0"
	r.Start()
	t.Cleanup(func() {
		r.kill(syscall.SIGKILL)
		if t.Failed() {
			r.mu.Lock()
			t.Logf("redis-server %s output:\n%s", r.Addr, r.out.String())
			r.mu.Unlock()
		}
	})
	return r
}

// Start starts the server (again, after Stop or Kill) on its address and waits until it
// answers PING.
func (r *Redis) Start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.Addr)
	cmd := exec.Command(r.path, "--port", port, "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
		"--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning")
	r.mu.Lock()
	cmd.Stdout, cmd.Stderr = &lockedWriter{r}, &lockedWriter{r}
	r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	Eventually(r.t, 10*time.Second, func() error {
		select {
		case <-done:
			r.t.Fatalf("redis-server exited at start:\n%s", r.output())
		default:
		}
		if !r.Ping() {
			return fmt.Errorf("redis-server does not answer PING on %s", r.Addr)
		}
		return nil
	})
}

// Stop shuts the server down cleanly (SIGTERM: the append-only file is flushed) and
// waits for it to exit.
func (r *Redis) Stop() { r.kill(syscall.SIGTERM) }

// Forget deletes what a stopped server persisted, so that the next Start brings it back
// empty, as a Redis without persistence comes back from a restart.
func (r *Redis) Forget() {
	r.t.Helper()
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		r.t.Fatalf("redis data: %v", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(r.dir, e.Name())); err != nil {
			r.t.Fatalf("redis data: %v", err)
		}
	}
}

// Kill stops the server with SIGKILL: what was not yet fsynced is lost.
func (r *Redis) Kill() { r.kill(syscall.SIGKILL) }

func (r *Redis) kill(sig syscall.Signal) {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Ping reports whether the server answers PING now.
func (r *Redis) Ping() bool {
	c, err := net.DialTimeout("tcp", r.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

func (r *Redis) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

type lockedWriter struct{ r *Redis }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	return w.r.out.Write(b)
}
