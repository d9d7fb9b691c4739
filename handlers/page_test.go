package handlers_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
)

func TestClientLibrary(t *testing.T) {
	lib := []byte(`export const connect = () => {};` + "\n")
	s := newServer(t, broker.Options{}, handlers.Options{Client: lib})
	resp, err := http.Get(s.URL + "/crier.js")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || string(body) != string(lib) {
		t.Fatalf("GET /crier.js: %d %q, want 200 and the library", resp.StatusCode, body)
	}
	for h, want := range map[string]string{
		"Content-Type":  "text/javascript; charset=utf-8",
		"Cache-Control": "no-cache",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if len(etag) < 10 || !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag = %q, want a quoted content hash", etag)
	}

	for _, tc := range []struct {
		name, ifNoneMatch string
		want              int
	}{
		{"same version", etag, http.StatusNotModified},
		{"one of several", `"old", ` + etag, http.StatusNotModified},
		{"weak form", "W/" + etag, http.StatusNotModified},
		{"another version", `"0123456789abcdef"`, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/crier.js", nil)
			req.Header.Set("If-None-Match", tc.ifNoneMatch)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("If-None-Match %s: %d, want %d", tc.ifNoneMatch, resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusNotModified && len(body) != 0 {
				t.Errorf("304 with a body of %d bytes", len(body))
			}
		})
	}

	// Another build of the library is another ETag.
	other := newServer(t, broker.Options{}, handlers.Options{Client: append(lib, ' ')})
	resp, err = http.Get(other.URL + "/crier.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("ETag"); got == etag {
		t.Errorf("a different library has the same ETag %s", got)
	}
}

func TestNoClientLibrary(t *testing.T) {
	s := newServer(t, broker.Options{}, handlers.Options{})
	rec := httptest.NewRecorder()
	s.Config.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/crier.js", nil))
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"error"`) {
		t.Errorf("GET /crier.js without a library: %d %s, want a JSON 404", rec.Code, rec.Body)
	}
}
