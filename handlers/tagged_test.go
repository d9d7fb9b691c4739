package handlers_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crierhq/crier/handlers"
	"github.com/crierhq/crier/handlers/hub"
	"github.com/crierhq/crier/internal/ssetest"
)

// TestTaggedStream: with tagged=1, every event published to a topic is preceded by a
// "topic:" line naming it, whichever way the stream is written; broadcasts and presence
// events have none, and a stream without tagged=1 never gets one.
func TestTaggedStream(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, proto string
		hub         bool
	}{
		{"hub", "h1", true},
		{"handler", "h2c", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, _ := opsHandler(t, func(o *handlers.Options) {
				if tc.hub {
					o.Hub = hub.New(hub.Options{})
					t.Cleanup(o.Hub.Close)
				}
			})
			srv, c, _ := protoServer(t, tc.proto, h, 0)
			tagged := openTagged(t, c, srv.URL+"/events?topic=a&topic=b&tagged=1")
			plain := openTagged(t, c, srv.URL+"/events?topic=a&topic=b")
			for _, body := range []string{
				`{"topic":"a","data":"x"}`,
				`{"topic":"b","event":"e","data":"y"}`,
				`{"data":"z"}`,
			} {
				if code, answer := opsPublish(t, c, srv.URL, opsToken, body, nil); code != http.StatusOK {
					t.Fatalf("publish %s: %d %s", body, code, answer)
				}
			}
			want := map[string]string{`data: "x"`: "topic: a", `data: "y"`: "topic: b", `data: "z"`: ""}
			for name, st := range map[string]*taggedStream{"tagged": tagged, "plain": plain} {
				for _, block := range st.blocksUntil(t, `data: "z"`) {
					topic := ""
					if strings.HasPrefix(block[0], "topic:") {
						topic = block[0]
					}
					data := block[len(block)-1]
					w, ours := want[data]
					switch {
					case name == "plain" && topic != "":
						t.Errorf("plain stream: %q has a topic line", block)
					case name == "tagged" && ours && topic != w:
						t.Errorf("tagged stream: %q, want first line %q", block, w)
					case name == "tagged" && !ours && topic != "":
						t.Errorf("tagged stream: %q (not published to a topic) has a topic line", block)
					}
					if i := slices.IndexFunc(block[1:], func(l string) bool { return strings.HasPrefix(l, "topic:") }); i >= 0 {
						t.Errorf("%s stream: topic line in the middle of %q", name, block)
					}
				}
			}
		})
	}
}

type taggedStream struct {
	r *ssetest.Reader
}

func openTagged(t *testing.T, c *http.Client, url string) *taggedStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return &taggedStream{ssetest.NewReader(resp.Body)}
}

// blocksUntil reads the stream's events, each as its lines, up to the one ending with last.
func (s *taggedStream) blocksUntil(t *testing.T, last string) [][]string {
	t.Helper()
	var blocks [][]string
	var block []string
	for {
		line, err := s.r.Line()
		if err != nil {
			t.Fatalf("read after %d events: %v", len(blocks), err)
		}
		switch {
		case line == "" && len(block) > 0:
			blocks = append(blocks, block)
			if block[len(block)-1] == last {
				return blocks
			}
			block = nil
		case line != "" && !strings.HasPrefix(line, ":") && !strings.HasPrefix(line, "retry:"):
			block = append(block, line)
		}
	}
}
