package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/crierhq/crier/handlers"
)

// TestSecurityHeaders checks what the browser is told: the page may be framed by no
// site and may load and connect to its own origin only; no response is sniffed as
// another type; and /metrics, unlike the browser endpoints, never answers with CORS
// headers, so no other site's script can read it.
func TestSecurityHeaders(t *testing.T) {
	srv := newServer(t, presenceHistory, handlers.Options{})
	tests := []struct {
		method, path string
		origin       string
		want         map[string]string // "" asserts the header is absent
	}{
		{"GET", "/", "", map[string]string{
			"X-Frame-Options":        "DENY",
			"X-Content-Type-Options": "nosniff",
			"Content-Security-Policy": "default-src 'self'; connect-src 'self'; object-src 'none'; " +
				"base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
		}},
		{"GET", "/healthz", "https://elsewhere.example", map[string]string{
			"X-Content-Type-Options":      "nosniff",
			"Access-Control-Allow-Origin": "*",
		}},
		{"GET", "/no-such-path", "", map[string]string{"X-Content-Type-Options": "nosniff"}},
		{"GET", "/metrics", "https://elsewhere.example", map[string]string{
			"X-Content-Type-Options":      "nosniff",
			"Access-Control-Allow-Origin": "",
		}},
		{"OPTIONS", "/metrics", "https://elsewhere.example", map[string]string{
			"Access-Control-Allow-Origin":  "",
			"Access-Control-Allow-Methods": "",
		}},
		// Preflights of the browser endpoints still pass.
		{"OPTIONS", "/publish", "https://elsewhere.example", map[string]string{
			"Access-Control-Allow-Origin": "*",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			if tt.method == "OPTIONS" {
				req.Header.Set("Access-Control-Request-Method", "POST")
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			for name, want := range tt.want {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if tt.path == "/" && strings.Contains(resp.Header.Get("Content-Security-Policy"), "unsafe") {
				t.Errorf("the page's policy allows unsafe sources")
			}
		})
	}
}
