package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// chart measures a series of stream counts and draws it. Memory first, opening streams
// up to each level in turn without publishing anything, so that the RSS growth is the
// streams' alone; then latency from the top level down, closing streams between levels.
func (r *runner) chart(ctx context.Context) (result, error) {
	res := result{Scenario: "chart", ServerCPU: -1}
	var points []point
	if r.o.in != "" {
		var err error
		if points, err = readPoints(r.o.in); err != nil {
			return res, err
		}
	} else {
		levels, err := parseLevels(r.o.levels)
		if err != nil {
			return res, err
		}
		if points, err = r.measureSeries(ctx, levels); err != nil {
			return res, err
		}
	}
	if len(points) == 0 {
		return res, fmt.Errorf("no points to draw")
	}
	title := r.o.title
	if title == "" {
		title = fmt.Sprintf("crier: latency (%.0f events/s of %d bytes) and memory per stream", r.o.rate, r.o.size)
		if r.o.in != "" {
			title = "crier: latency and memory per stream"
		}
	}
	if err := os.WriteFile(r.o.out, []byte(drawChart(title, points)), 0o644); err != nil {
		return res, err
	}
	r.logf("wrote %s", r.o.out)
	res.Points = points
	res.Streams = points[len(points)-1].Streams
	return res, nil
}

func parseLevels(s string) ([]int, error) {
	var levels []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-levels %q: want positive integers separated by commas", s)
		}
		levels = append(levels, n)
	}
	slices.Sort(levels)
	return slices.Compact(levels), nil
}

func (r *runner) measureSeries(ctx context.Context, levels []int) ([]point, error) {
	if top := levels[len(levels)-1]; top > r.o.streams && r.o.streams > 0 {
		levels = slices.DeleteFunc(levels, func(n int) bool { return n > r.o.streams })
	}
	p := newPool(r.c, r.o.topic, r.o.bufSize, r.loops)
	defer p.closeAll()
	points := make([]point, len(levels))
	before := r.rss()
	for i, n := range levels {
		if _, err := r.openStreams(ctx, p, n-int(p.open.Load())); err != nil {
			return nil, err
		}
		sleepCtx(ctx, r.o.settle)
		open := p.open.Load()
		points[i].Streams = open
		if after := r.rss(); before > 0 && after > 0 {
			points[i].KiBPerStream = round3(float64(after-before) / float64(open))
			r.logf("%d streams: server RSS +%d KiB, %.2f KiB per stream", open, after-before, points[i].KiBPerStream)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	for i := len(levels) - 1; i >= 0; i-- {
		p.closeTo(levels[i])
		sleepCtx(ctx, r.o.settle)
		ph := r.measure(ctx, p, r.o.rate)
		var lr result
		lr.fillLoad(ph, p)
		pt := &points[i]
		pt.Streams = lr.Streams
		pt.P50, pt.P99, pt.Max = lr.P50, lr.P99, lr.Max
		pt.DeliveriesPerSec, pt.Lost = lr.DeliveriesPerSec, lr.Lost
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return points, nil
}

// readPoints reads the JSON lines of earlier runs (other lines are skipped) and merges
// those with the same number of streams: latency from one, memory from another.
func readPoints(file string) ([]point, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	byStreams := map[int64]*point{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		var line struct {
			point
			Points []point `json:"points"` // a chart run's own line
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		if line.Points == nil && line.Streams > 0 {
			line.Points = []point{line.point}
		}
		for _, p := range line.Points {
			merge(byStreams, p)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var points []point
	for _, p := range byStreams {
		points = append(points, *p)
	}
	slices.SortFunc(points, func(a, b point) int { return int(a.Streams - b.Streams) })
	return points, nil
}

// merge adds p's figures to the point with the same number of streams.
func merge(byStreams map[int64]*point, p point) {
	if p.Streams <= 0 {
		return
	}
	q := byStreams[p.Streams]
	if q == nil {
		q = &point{Streams: p.Streams}
		byStreams[p.Streams] = q
	}
	if p.KiBPerStream > 0 {
		q.KiBPerStream = p.KiBPerStream
	}
	if p.P99 > 0 {
		q.P50, q.P99, q.Max, q.DeliveriesPerSec, q.Lost = p.P50, p.P99, p.Max, p.DeliveriesPerSec, p.Lost
	}
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten, for an axis.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*e {
			return m * e
		}
	}
	return 10 * e
}

func fmtTick(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// drawChart renders two panels sharing the x axis (streams): latency percentiles in
// milliseconds above, server memory per stream in KiB below.
func drawChart(title string, points []point) string {
	const (
		w, h          = 760, 620
		left, right   = 70, 150
		top1, bottom1 = 60, 300
		top2, bottom2 = 370, 560
	)
	var maxX, maxLat, maxMem float64
	for _, p := range points {
		maxX = max(maxX, float64(p.Streams))
		maxLat = max(maxLat, p.P50, p.P99, p.Max)
		maxMem = max(maxMem, p.KiBPerStream)
	}
	maxX, maxLat, maxMem = niceMax(maxX), niceMax(maxLat), niceMax(maxMem)
	x := func(v float64) float64 { return left + (w-left-right)*v/maxX }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="28" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))

	panel := func(top, bottom float64, ymax float64, ylabel string, series []struct {
		name, color string
		val         func(point) float64
	}) {
		y := func(v float64) float64 { return bottom - (bottom-top)*v/ymax }
		// Grid and y ticks.
		for i := 0; i <= 5; i++ {
			v := ymax * float64(i) / 5
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(v), w-right, y(v))
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, fmtTick(v))
		}
		for i := 0; i <= 5; i++ {
			v := maxX * float64(i) / 5
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`+"\n", x(v), bottom, x(v), bottom+4)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(v), bottom+17, fmtTick(v))
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>`+"\n", left, bottom, w-right, bottom)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>`+"\n", left, top, left, bottom)
		fmt.Fprintf(&b, `<text transform="translate(%d %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n",
			18, (top+bottom)/2, html.EscapeString(ylabel))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">open streams</text>`+"\n", x(maxX/2), bottom+34)
		for k, s := range series {
			var pts []string
			for _, p := range points {
				if v := s.val(p); v > 0 {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(p.Streams)), y(v)))
				}
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
			for _, pt := range pts {
				cx, cy, _ := strings.Cut(pt, ",")
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3.5" fill="%s"/>`+"\n", cx, cy, s.color)
			}
			ly := top + 10 + float64(k)*20
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", w-right+15, ly, w-right+40, ly, s.color)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f">%s</text>`+"\n", w-right+46, ly+4, html.EscapeString(s.name))
		}
	}
	type series = []struct {
		name, color string
		val         func(point) float64
	}
	panel(top1, bottom1, maxLat, "publish-to-receive latency (ms)", series{
		{"p50", "#1f77b4", func(p point) float64 { return p.P50 }},
		{"p99", "#ff7f0e", func(p point) float64 { return p.P99 }},
		{"max", "#d62728", func(p point) float64 { return p.Max }},
	})
	panel(top2, bottom2, maxMem, "server RSS per stream (KiB)", series{
		{"KiB/stream", "#2ca02c", func(p point) float64 { return p.KiBPerStream }},
	})
	b.WriteString("</svg>\n")
	return b.String()
}
