package chaos_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crierhq/crier/e2e/internal/sseconn"
	"github.com/crierhq/crier/internal/testenv"
)

// witness is a stream that must keep receiving while hostile clients do their worst.
type witness struct {
	t    *testing.T
	addr string
	st   *sseconn.Stream
	n    int
}

func (w *witness) check(what string) {
	w.t.Helper()
	w.n++
	data := "still-here-" + strconv.Itoa(w.n)
	req, _ := http.NewRequest(http.MethodPost, "http://"+w.addr+"/publish?topic=w", strings.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := publishClient.Do(req)
	if err != nil {
		w.t.Fatalf("after %s: publish: %v", what, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		w.t.Fatalf("after %s: publish %d", what, resp.StatusCode)
	}
	w.st.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		ev, err := w.st.Next()
		if err != nil {
			w.t.Fatalf("after %s: the witness stream broke: %v", what, err)
		}
		if ev.Name == "message" && ev.Data == data {
			return
		}
	}
}

// raw sends req on a new connection and returns the status line, or "" when the server
// closed the connection without an answer.
func raw(t *testing.T, addr string, write func(net.Conn) error) (string, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	werr := write(conn)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && err != io.EOF && werr == nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("no answer and no close within 30s")
		}
	}
	return strings.TrimSpace(line), time.Since(start)
}

func TestHostileClientsDisturbNobody(t *testing.T) {
	node := testenv.Start(t, []string{"-publish-token", token, "-log-level", "warn",
		"-header-timeout", "1s", "-max-streams-per-ip", "10"})
	st, err := sseconn.Open(context.Background(), node.Addr, "/events?topic=w", nil)
	if err != nil || st.Expect200() != nil {
		t.Fatalf("witness: %v", err)
	}
	defer st.Close()
	w := &witness{t: t, addr: node.Addr, st: st}
	w.check("start")

	t.Run("slow headers are cut off", func(t *testing.T) {
		status, took := raw(t, node.Addr, func(c net.Conn) error {
			if _, err := io.WriteString(c, "GET /events HTTP/1.1\r\nHost: x\r\n"); err != nil {
				return err
			}
			for i := range 40 { // a header line every 200ms: never done within 1s
				time.Sleep(200 * time.Millisecond)
				if _, err := io.WriteString(c, "X-Dribble-"+strconv.Itoa(i)+": y\r\n"); err != nil {
					return err // the server hung up: what we wanted
				}
			}
			return nil
		})
		if took > 5*time.Second {
			t.Errorf("a client dribbling its headers was served for %s; -header-timeout is 1s", took)
		}
		if status != "" && !strings.Contains(status, " 408 ") {
			t.Errorf("slow headers: %q, want a closed connection or a 408", status)
		}
		w.check("slow headers")
	})

	t.Run("huge headers are 431", func(t *testing.T) {
		status, _ := raw(t, node.Addr, func(c net.Conn) error {
			_, err := io.WriteString(c, "GET /events HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 200<<10)+"\r\n\r\n")
			return err
		})
		if !strings.Contains(status, " 431 ") {
			t.Errorf("200 KiB of headers: %q, want 431", status)
		}
		w.check("huge headers")
	})

	get := func(target string, header http.Header) (int, string) {
		t.Helper()
		st, err := sseconn.Open(context.Background(), node.Addr, target, header)
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		defer st.Close()
		body := ""
		if st.Resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(st.Resp.Body, 1024))
			body = string(b)
		}
		return st.Resp.StatusCode, body
	}
	expect4xx := func(t *testing.T, what string, code int, body string, want int) {
		t.Helper()
		if code != want || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %q, want %d with a JSON error", what, code, body, want)
		}
	}

	t.Run("too many topics are 400", func(t *testing.T) {
		for _, n := range []int{65, 500} {
			var q []string
			for i := range n {
				q = append(q, "topic=t"+strconv.Itoa(i))
			}
			code, body := get("/events?"+strings.Join(q, "&"), nil)
			expect4xx(t, strconv.Itoa(n)+" topics", code, body, http.StatusBadRequest)
		}
		w.check("too many topics")
	})

	t.Run("invalid UTF-8 is 400", func(t *testing.T) {
		code, body := get("/events?topic=%ff%fe", nil)
		expect4xx(t, "topic %ff%fe", code, body, http.StatusBadRequest)
		for _, tc := range []struct{ ct, query, body string }{
			{"text/plain", "topic=w", "bad \xff data"},
			{"text/plain", "topic=%c3%28", "x"},
			{"application/json", "", "{\"topic\":\"w\",\"data\":\"\xc3\x28\"}"},
			{"application/json", "", "{\"topic\":\"\xff\"}"},
		} {
			req, _ := http.NewRequest(http.MethodPost, "http://"+node.Addr+"/publish?"+tc.query, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", tc.ct)
			resp, err := publishClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			expect4xx(t, "publish "+strconv.Quote(tc.body), resp.StatusCode, string(b), http.StatusBadRequest)
		}
		w.check("invalid UTF-8")
	})

	t.Run("hostile Last-Event-ID gets a stream", func(t *testing.T) {
		for _, id := range []string{"0", "-1", "abc", "99999999999999999999999", strings.Repeat("9", 4000), "1 2"} {
			code, body := get("/events?topic=w", http.Header{"Last-Event-ID": {id}})
			if code != http.StatusOK {
				t.Errorf("Last-Event-ID %.20q: %d %s, want a stream", id, code, body)
			}
		}
		w.check("hostile Last-Event-ID")
	})

	t.Run("streams per address are capped", func(t *testing.T) {
		var open []*sseconn.Stream
		defer func() {
			for _, s := range open {
				s.Close()
			}
		}()
		// The streams of the subtests before may not have been counted out yet.
		testenv.Eventually(t, 5*time.Second, func() error {
			for len(open) < 9 { // the witness holds the tenth place
				s, err := sseconn.Open(context.Background(), node.Addr, "/events", nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Expect200(); err != nil {
					return fmt.Errorf("stream %d within the cap: %v", len(open)+1, err)
				}
				open = append(open, s)
			}
			return nil
		})
		s, err := sseconn.Open(context.Background(), node.Addr, "/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(io.LimitReader(s.Resp.Body, 1024))
		s.Close()
		if s.Resp.StatusCode != http.StatusTooManyRequests || s.Resp.Header.Get("Retry-After") == "" {
			t.Errorf("eleventh stream: %d Retry-After %q, want 429 with Retry-After", s.Resp.StatusCode, s.Resp.Header.Get("Retry-After"))
		}
		expect4xx(t, "eleventh stream", s.Resp.StatusCode, string(b), http.StatusTooManyRequests)
		w.check("the per-address cap")
	})
}
