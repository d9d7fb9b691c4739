package handlers

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"

	"github.com/go-chi/chi/v5"
)

// indexTemplate is the page's template file inside Options.Templates.
const indexTemplate = "index.html"

// page serves the web page and its assets. The page takes no per-request data, so the
// template is rendered once, at start-up.
type page struct {
	html   []byte
	assets fs.FS
	files  http.Handler
}

func newPage(templates, static fs.FS) (*page, error) {
	if templates == nil || static == nil {
		return nil, fmt.Errorf("handlers: templates and static files are required")
	}
	tmpl, err := template.ParseFS(templates, indexTemplate)
	if err != nil {
		return nil, fmt.Errorf("handlers: parse page template: %w", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, nil); err != nil {
		return nil, fmt.Errorf("handlers: render page template: %w", err)
	}
	return &page{
		html:   buf.Bytes(),
		assets: static,
		files:  http.StripPrefix("/static/", http.FileServerFS(static)),
	}, nil
}

func (p *page) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(p.html)
}

// static serves an asset; a missing file or a directory is a JSON 404, not a listing.
func (p *page) static(w http.ResponseWriter, r *http.Request) {
	if fi, err := fs.Stat(p.assets, chi.URLParam(r, "*")); err != nil || fi.IsDir() {
		writeError(w, http.StatusNotFound, "no such file")
		return
	}
	p.files.ServeHTTP(w, r)
}
