package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// Do sends one command to the server and returns its reply: a string (simple or bulk;
// "" for nil), an int64, or a []any of those. An error reply fails the test.
func (r *Redis) Do(t testing.TB, args ...string) any {
	t.Helper()
	c, err := net.DialTimeout("tcp", r.Addr, 5*time.Second)
	if err != nil {
		t.Fatalf("redis %s: %v", r.Addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	var cmd bytes.Buffer
	fmt.Fprintf(&cmd, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&cmd, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(cmd.Bytes()); err != nil {
		t.Fatalf("redis %v: %v", args, err)
	}
	reply, err := readReply(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("redis %v: %v", args, err)
	}
	return reply
}

// readReply reads one RESP2 reply.
func readReply(rd *bufio.Reader) (any, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply")
	}
	n, _ := strconv.ParseInt(line[1:], 10, 64)
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, errors.New(line[1:])
	case ':':
		return n, nil
	case '$':
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		out := make([]any, 0, max(n, 0))
		for range n {
			v, err := readReply(rd)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}

// Info returns the fields of one INFO section.
func (r *Redis) Info(t testing.TB, section string) map[string]string {
	t.Helper()
	raw, _ := r.Do(t, "INFO", section).(string)
	out := map[string]string{}
	for _, line := range strings.Split(raw, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// CPU returns the CPU time the server has used so far, user and system, in seconds.
func (r *Redis) CPU(t testing.TB) float64 {
	t.Helper()
	info := r.Info(t, "cpu")
	sys, _ := strconv.ParseFloat(info["used_cpu_sys"], 64)
	user, _ := strconv.ParseFloat(info["used_cpu_user"], 64)
	return sys + user
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
