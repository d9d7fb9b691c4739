package main

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPointsAndDraw(t *testing.T) {
	file := filepath.Join(t.TempDir(), "runs.jsonl")
	lines := `progress line, not JSON
{"scenario":"idle","streams":1000,"kib_per_stream":36.5}
{"scenario":"fanout","streams":1000,"p50_ms":9,"p99_ms":18,"max_ms":21,"deliveries_per_sec":10000}
{"scenario":"chart","streams":19000,"points":[{"streams":5000,"kib_per_stream":36.8,"p50_ms":46,"p99_ms":152,"max_ms":183}]}
`
	if err := os.WriteFile(file, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	points, err := readPoints(file)
	if err != nil {
		t.Fatal(err)
	}
	want := []point{
		{Streams: 1000, KiBPerStream: 36.5, P50: 9, P99: 18, Max: 21, DeliveriesPerSec: 10000},
		{Streams: 5000, KiBPerStream: 36.8, P50: 46, P99: 152, Max: 183},
	}
	if len(points) != len(want) {
		t.Fatalf("points = %+v, want %+v", points, want)
	}
	for i := range want {
		if points[i] != want[i] {
			t.Errorf("point %d = %+v, want %+v", i, points[i], want[i])
		}
	}
	svg := drawChart(`baseline <b0b26b9> & co`, points)
	// Well-formed XML whatever the title holds, with one line per series and a dot per point.
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("SVG is not well-formed: %v", err)
			}
			break
		}
	}
	if got := strings.Count(svg, "<polyline"); got != 4 {
		t.Errorf("%d polylines, want 4 (p50, p99, max, KiB/stream)", got)
	}
	if got := strings.Count(svg, "<circle"); got != 8 {
		t.Errorf("%d dots, want 8", got)
	}
}

func TestParseLevels(t *testing.T) {
	got, err := parseLevels("5000, 1000,1000,19000")
	if err != nil || len(got) != 3 || got[0] != 1000 || got[2] != 19000 {
		t.Errorf("parseLevels = %v, %v", got, err)
	}
	for _, bad := range []string{"", "1000,x", "0", "-5"} {
		if _, err := parseLevels(bad); err == nil {
			t.Errorf("parseLevels(%q) accepted", bad)
		}
	}
}
