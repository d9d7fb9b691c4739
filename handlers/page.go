package handlers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
)

// indexTemplate is the page's file inside Options.Templates.
const indexTemplate = "index.html"

// page serves the web page and its assets. The page takes no per-request data, so
// templates/index.html is served as it is. It is not run through html/template on
// purpose: that package calls reflect's MethodByName, which makes the linker keep every
// exported method of every type in the binary (all of go-redis's commands among them)
// and grows the binary from about 13 MB to 21 MB. A template action in the file is
// refused at start-up rather than served verbatim.
type page struct {
	html   []byte
	assets fs.FS
	files  http.Handler
	client []byte // the browser client library; nil: none
	etag   string // of client: a hash of its bytes
}

func newPage(templates, static fs.FS, client []byte) (*page, error) {
	if templates == nil || static == nil {
		return nil, fmt.Errorf("handlers: templates and static files are required")
	}
	html, err := fs.ReadFile(templates, indexTemplate)
	if err != nil {
		return nil, fmt.Errorf("handlers: read the page: %w", err)
	}
	if bytes.Contains(html, []byte("{{")) {
		return nil, fmt.Errorf("handlers: %s holds a template action, but the page is served verbatim", indexTemplate)
	}
	sum := sha256.Sum256(client)
	return &page{
		html:   html,
		assets: static,
		files:  http.StripPrefix("/static/", http.FileServerFS(static)),
		client: client,
		etag:   `"` + hex.EncodeToString(sum[:12]) + `"`,
	}, nil
}

// library serves the browser client. Browsers keep it and ask again each time with its
// ETag, so an upgraded crier is picked up at once and an unchanged one costs a 304.
func (p *page) library(w http.ResponseWriter, r *http.Request) {
	if p.client == nil {
		writeErr(w, reject(http.StatusNotFound, "no such file"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", p.etag)
	http.ServeContent(w, r, "crier.js", time.Time{}, bytes.NewReader(p.client))
}

// pagePolicy lets the page load and connect to this origin only, run no inline script or
// style, and be framed by no site (frame-ancestors works only as a header, not in the
// page's own meta tag).
const pagePolicy = "default-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func (p *page) index(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", pagePolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(p.html)
}

// static serves an asset; a missing file or a directory is a JSON 404, not a listing.
func (p *page) static(w http.ResponseWriter, r *http.Request) {
	if fi, err := fs.Stat(p.assets, chi.URLParam(r, "*")); err != nil || fi.IsDir() {
		writeErr(w, reject(http.StatusNotFound, "no such file"))
		return
	}
	p.files.ServeHTTP(w, r)
}
