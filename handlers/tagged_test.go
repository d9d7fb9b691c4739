package handlers_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/crierhq/crier/handlers"
)

// TestTaggedStream: with tagged=1, every event published to a topic is preceded by a
// "topic:" line naming it, whichever way the stream is written; broadcasts and presence
// events have none, and a stream without tagged=1 never gets one.
func TestTaggedStream(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		su   setup
	}{
		{"hub", setup{proto: "h1"}},
		{"handler", setup{proto: "h2c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.su.start(t, presenceHistory, handlers.Options{})
			tagged := s.open(t, "?topic=a&topic=b&tagged=1", nil)
			plain := s.open(t, "?topic=a&topic=b", nil)
			for _, body := range []string{
				`{"topic":"a","data":"x"}`,
				`{"topic":"b","event":"e","data":"y"}`,
				`{"data":"z"}`,
			} {
				if code, answer, _ := s.post(t, "application/json", "", body, nil); code != http.StatusOK {
					t.Fatalf("publish %s: %d %v", body, code, answer)
				}
			}
			want := map[string]string{`data: "x"`: "topic: a", `data: "y"`: "topic: b", `data: "z"`: ""}
			for name, st := range map[string]*stream{"tagged": tagged, "plain": plain} {
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

// blocksUntil reads the stream's events, each as its lines, up to the one ending with last.
func (st *stream) blocksUntil(t *testing.T, last string) [][]string {
	t.Helper()
	var blocks [][]string
	var block []string
	for {
		line, err := st.Line()
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
