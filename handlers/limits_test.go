package handlers_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
	"github.com/crierhq/crier/internal/testenv"
)

func TestStreamsPerAddressCap(t *testing.T) {
	s := newServer(t, broker.Options{History: 10, Presence: true}, handlers.Options{MaxStreamsPerAddr: 2, Retry: 2 * time.Second})
	first := s.open(t, "?topic=a", nil)
	second := s.open(t, "?topic=a", nil)
	for _, st := range []*stream{first, second} {
		st.expect(t, "new_user")
	}
	first.expect(t, "new_user") // the second one's arrival

	_, resp := s.try(t, "?topic=a", nil)
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]string
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("third stream from one address: %d Retry-After %q, want 429 and 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if err := json.Unmarshal(raw, &body); err != nil || !strings.Contains(body["error"], "too many open streams") {
		t.Fatalf("third stream: body %q, want a JSON error", raw)
	}

	// The refusal disturbed nobody: both streams still receive.
	if code, _, _ := s.post(t, "text/plain", "?topic=a", "still here", nil); code != http.StatusOK {
		t.Fatalf("publish: %d", code)
	}
	for i, st := range []*stream{first, second} {
		if ev := st.expect(t, "message"); ev.Data != "still here" {
			t.Fatalf("stream %d got %q", i, ev.Data)
		}
	}

	// A stream that ends gives its place back.
	second.close()
	testenv.Eventually(t, 5*time.Second, func() error {
		st, resp := s.try(t, "?topic=a", nil)
		if resp.StatusCode != http.StatusOK {
			st.close()
			return fmt.Errorf("after closing a stream: still %d", resp.StatusCode)
		}
		st.expect(t, "new_user")
		return nil
	})
}
