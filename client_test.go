package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/crierhq/crier/internal/testenv"
)

// TestClientLibrarySize serves the browser client from the real binary and checks that
// it is the file in clients/js and stays small: under 6 KiB gzipped (README says how
// small it is now).
func TestClientLibrarySize(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(testenv.Root(), "clients", "js", "crier.js"))
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.Start(t, nil)
	resp, err := http.Get(p.URL + "/crier.js")
	if err != nil {
		t.Fatal(err)
	}
	served, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /crier.js: %d, %v", resp.StatusCode, err)
	}
	if !bytes.Equal(served, src) {
		t.Fatalf("/crier.js (%d bytes) is not clients/js/crier.js (%d bytes)", len(served), len(src))
	}
	var z bytes.Buffer
	w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	w.Write(served)
	w.Close()
	const limit = 6 << 10
	t.Logf("crier.js: %d bytes, %d gzipped", len(served), z.Len())
	if z.Len() >= limit {
		t.Errorf("crier.js is %d bytes gzipped, want under %d", z.Len(), limit)
	}
}
