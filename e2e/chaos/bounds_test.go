package chaos_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/crierhq/crier/e2e/internal/sseconn"
	"github.com/crierhq/crier/internal/testenv"
)

// rssKiB reads a process's resident set size.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kib
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// metric reads one sample of crier's /metrics, 0 when it is absent.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func publishText(t *testing.T, addr, topic string, data []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/publish?topic="+topic, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := publishClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish: %d", resp.StatusCode)
	}
}

// TestResumingNonReadersHoldLittle: clients that resume from the start of a large history
// and then read nothing cost crier little memory of its own: the replay is written
// straight from the shared, encoded events, a slice at a time, and what the socket does
// not take stays in history rather than being copied per stream. 20 such clients against
// 150 MiB of history must raise crier's RSS by less than 64 MiB (each used to hold its own
// copy: one such client took 660 MB), while a reading client keeps receiving.
func TestResumingNonReadersHoldLittle(t *testing.T) {
	const (
		events   = 150
		size     = 1 << 20
		clients  = 20
		maxGrowK = 64 << 10
	)
	node := testenv.Start(t, []string{"-publish-token", token, "-log-level", "warn", "-max-body", "2MiB"})
	data := bytes.Repeat([]byte("x"), size)
	for range events {
		publishText(t, node.Addr, "t", data)
	}
	witnessStream, err := sseconn.Open(context.Background(), node.Addr, "/events?topic=w", nil)
	if err != nil || witnessStream.Expect200() != nil {
		t.Fatalf("witness: %v", err)
	}
	defer witnessStream.Close()
	w := &witness{t: t, addr: node.Addr, st: witnessStream}
	w.check("start")
	before := rssKiB(t, node.Cmd.Process.Pid)

	// Each client asks for everything after id 1 with a tiny receive buffer, then
	// reads nothing.
	var conns []net.Conn
	for range clients {
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
			if err != nil {
				return err
			}
			return serr
		}}
		c, err := d.Dial("tcp", node.Addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET /events?topic=t HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 1\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Once every client has bytes waiting, crier has begun each replay and stopped
	// at a full socket; the witness proves the writers go on meanwhile.
	for i, c := range conns {
		waitUnread(t, c, fmt.Sprintf("client %d", i))
	}
	for i := range 5 {
		w.check(fmt.Sprintf("non-readers, round %d", i))
	}
	after := rssKiB(t, node.Cmd.Process.Pid)
	t.Logf("crier RSS %d KiB with %d MiB of history, %d KiB with %d resuming non-readers too",
		before, events*size>>20, after, clients)
	if grow := after - before; grow >= maxGrowK {
		t.Fatalf("%d resuming clients that read nothing raised RSS by %d KiB, want under %d KiB", clients, grow, maxGrowK)
	}
}

// waitUnread waits until c has bytes to read, without reading them.
func waitUnread(t *testing.T, c net.Conn, what string) {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		var n int32 // SIOCINQ, which is TIOCINQ (FIONREAD): bytes waiting to be read
		_ = raw.Control(func(fd uintptr) {
			_, _, _ = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
		})
		if n == 0 {
			return fmt.Errorf("%s: nothing arrived", what)
		}
		return nil
	})
}

// TestZeroWindowHTTP2StreamIsCutOff: an HTTP/2 client that opens streams but grants no
// flow-control window cannot make crier hold more than -buffer events for them: they are
// cut off as slow like any client that does not read, from the start of the stream.
func TestZeroWindowHTTP2StreamIsCutOff(t *testing.T) {
	const streams = 3
	node := testenv.Start(t, []string{"-publish-token", token, "-log-level", "warn", "-h2c", "-buffer", "16"})
	c, err := net.Dial("tcp", node.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i := range streams {
		hb.Reset()
		for _, f := range []hpack.HeaderField{
			{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
			{Name: ":authority", Value: node.Addr}, {Name: ":path", Value: "/events?topic=z"},
		} {
			_ = enc.WriteField(f)
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hb.Bytes(),
			EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	// Answer the server's SETTINGS and PINGs, read everything else, grant nothing.
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = fr.WriteSettingsAck()
				}
			case *http2.PingFrame:
				if !f.IsAck() {
					_ = fr.WritePing(true, f.Data)
				}
			}
		}
	}()
	testenv.Eventually(t, 20*time.Second, func() error {
		if n := metric(t, node.Addr, "crier_subscribers"); n < streams {
			return fmt.Errorf("%v of %d h2 streams open", n, streams)
		}
		return nil
	})
	for i := 0; metric(t, node.Addr, "crier_slow_subscribers_total") < streams; i++ {
		if i == 400 {
			t.Fatalf("%d events of 16 KiB published; %v of %d zero-window streams cut off, want all (-buffer 16)",
				i, metric(t, node.Addr, "crier_slow_subscribers_total"), streams)
		}
		publishText(t, node.Addr, "z", bytes.Repeat([]byte("z"), 16<<10))
	}
}
