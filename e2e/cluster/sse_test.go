package cluster_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// event is one Server-Sent Event as a client sees it.
type event struct {
	ID, Name, Data string
}

// stream is an open GET /events, parsed in the background.
type stream struct {
	t        *testing.T
	events   chan event
	comments atomic.Int64
	ended    chan struct{}
	cancel   context.CancelFunc
}

// open opens a stream at url (with query) and fails t unless it answers 200.
func open(t *testing.T, url string, lastID string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	s := &stream{t: t, events: make(chan event, 1<<18), ended: make(chan struct{}), cancel: cancel}
	t.Cleanup(s.close)
	go func() {
		defer close(s.ended)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var ev event
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.ID != "" || len(data) > 0 {
					ev.Data = strings.Join(data, "\n")
					s.events <- ev
				}
				ev, data = event{}, nil
			case strings.HasPrefix(line, ":"):
				s.comments.Add(1)
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.Name = line[7:]
			case strings.HasPrefix(line, "data: "):
				data = append(data, line[6:])
			}
		}
	}()
	return s
}

func (s *stream) close() { s.cancel(); <-s.ended }

// next returns the next event within d.
func (s *stream) next(d time.Duration) event {
	s.t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case <-s.ended:
		s.t.Fatal("stream ended")
	case <-time.After(d):
		s.t.Fatalf("no event within %s", d)
	}
	return event{}
}

// nextNamed skips events of other names.
func (s *stream) nextNamed(name string, d time.Duration) event {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ev := s.next(time.Until(deadline))
		if ev.Name == name {
			return ev
		}
	}
}

// isOpen reports whether the stream is still open.
func (s *stream) isOpen() bool {
	select {
	case <-s.ended:
		return false
	default:
		return true
	}
}
