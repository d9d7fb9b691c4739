// Command soak holds many streams open on a real crier for a long time with steady
// publishing and churn, samples the server's memory (RSS), goroutines and open file
// descriptors, prints them as a table while it runs and as curves at the end, and exits 1
// when one of them kept growing.
//
//	go run ./e2e/soak                         # 10,000 streams for 10 minutes
//	go run ./e2e/soak -streams 2000 -duration 1m -svg soak.svg
//
// It builds crier from the repository it runs in and starts it on a loopback port.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/crierhq/crier/e2e/internal/sseconn"
)

const token = "soak-token"

type options struct {
	streams  int
	duration time.Duration
	every    time.Duration
	rate     int     // events per second, each on one of the topics
	topics   int     // streams are spread over this many topics
	churn    float64 // fraction of streams that reconnect every sample interval
	presence bool
	svg      string
}

type sample struct {
	at         time.Duration
	rssKiB     int64
	goroutines int64
	fds        int64
	open       int64 // streams open at the client
	received   int64
}

func main() {
	var o options
	flag.IntVar(&o.streams, "streams", 10000, "streams to hold open")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long to run once every stream is open")
	flag.DurationVar(&o.every, "every", 30*time.Second, "sample interval")
	flag.IntVar(&o.rate, "rate", 20, "events published per second (each to one topic)")
	flag.IntVar(&o.topics, "topics", 100, "topics the streams are spread over")
	flag.Float64Var(&o.churn, "churn", 0.02, "fraction of the streams that reconnect (with Last-Event-ID) in each sample interval")
	flag.BoolVar(&o.presence, "presence", false, "run crier with presence events (every arrival costs one delivery per stream)")
	flag.StringVar(&o.svg, "svg", "", "also write the curves to this SVG file")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	raiseFileLimit()
	bin, err := build()
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(bin))
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "-addr", addr, "-publish-token", token, "-log-level", "warn",
		"-presence="+strconv.FormatBool(o.presence), "-history", "10000", "-heartbeat", "15s")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	if err := waitHealthy(addr); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	fmt.Printf("crier pid %d on %s; %d streams, %d events/s over %d topics, churn %.0f%% per %s, presence %v\n",
		pid, addr, o.streams, o.rate, o.topics, o.churn*100, o.every, o.presence)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var open, received, failures atomic.Int64
	var wg sync.WaitGroup
	churn := make([]chan struct{}, o.streams)
	for i := range o.streams {
		churn[i] = make(chan struct{}, 1)
		wg.Go(func() {
			follow(ctx, addr, "/events?topic=s"+strconv.Itoa(i%o.topics), churn[i], &open, &received, &failures)
		})
		if i%200 == 199 {
			time.Sleep(20 * time.Millisecond) // a steady ramp, not a SYN flood
		}
	}
	rampDeadline := time.Now().Add(2 * time.Minute)
	for open.Load() < int64(o.streams) && time.Now().Before(rampDeadline) {
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("%d of %d streams open\n", open.Load(), o.streams)

	wg.Go(func() { publish(ctx, addr, o) })
	var samples []sample
	start := time.Now()
	fmt.Printf("%8s %10s %11s %8s %8s %12s\n", "time", "RSS MiB", "goroutines", "fds", "streams", "received")
	for {
		s := measure(addr, pid)
		s.at = time.Since(start).Round(time.Second)
		s.open, s.received = open.Load(), received.Load()
		samples = append(samples, s)
		fmt.Printf("%8s %10.1f %11d %8d %8d %12d\n", s.at, float64(s.rssKiB)/1024, s.goroutines, s.fds, s.open, s.received)
		if time.Since(start) >= o.duration {
			break
		}
		// Churn: some streams go and come back, so leaks per connection would show. It
		// comes a whole interval before the next sample, which sees what the reconnects
		// left behind, not the reconnects in flight.
		for range int(o.churn * float64(o.streams)) {
			select {
			case churn[rand.IntN(o.streams)] <- struct{}{}:
			default:
			}
		}
		time.Sleep(o.every)
	}
	cancel()
	wg.Wait()
	fmt.Printf("stream failures (refused, broken, reconnected): %d\n", failures.Load())
	printCurves(samples)
	if o.svg != "" {
		if err := os.WriteFile(o.svg, svg(samples), 0o644); err != nil {
			return err
		}
		fmt.Println("curves written to", o.svg)
	}
	return verdict(samples)
}

// follow holds one stream open, reading everything, and reconnects with its last id when
// the stream breaks or when told to churn.
func follow(ctx context.Context, addr, target string, churn <-chan struct{}, open, received, failures *atomic.Int64) {
	lastID := ""
	for ctx.Err() == nil {
		h := http.Header{}
		if lastID != "" {
			h.Set("Last-Event-ID", lastID)
		}
		st, err := sseconn.Open(ctx, addr, target, h)
		if err != nil || st.Expect200() != nil {
			failures.Add(1)
			time.Sleep(time.Second)
			continue
		}
		open.Add(1)
		stop := make(chan struct{})
		go func() {
			select {
			case <-ctx.Done():
			case <-churn:
			case <-stop:
			}
			st.Close()
		}()
		for {
			ev, err := st.Next()
			if err != nil {
				break
			}
			lastID = ev.ID
			received.Add(1)
		}
		close(stop)
		open.Add(-1)
	}
}

// publish sends o.rate events per second to random topics until ctx ends.
func publish(ctx context.Context, addr string, o options) {
	client := &http.Client{Timeout: 10 * time.Second}
	tick := time.NewTicker(time.Second / time.Duration(max(o.rate, 1)))
	defer tick.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n++
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost,
			fmt.Sprintf("http://%s/publish?topic=s%d&event=soak", addr, rand.IntN(o.topics)),
			strings.NewReader(strconv.Itoa(n)))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "text/plain")
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

// measure reads the server's RSS and descriptors from /proc and its goroutines from
// /metrics; a value it cannot read is -1.
func measure(addr string, pid int) sample {
	s := sample{rssKiB: -1, goroutines: -1, fds: -1}
	if f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				s.rssKiB, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			}
		}
		f.Close()
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = int64(len(ents))
	}
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				s.goroutines = int64(f)
			}
		}
		resp.Body.Close()
	}
	return s
}

// verdict looks for growth that does not stop. The heap settles slowly (Go lets it grow
// to twice the live data between collections, and a quiet server collects rarely), so
// RSS is judged over the second half of the run, which may grow by at most 10% from its
// first sample: a settling heap grows early and stops, a leak goes on. Goroutines and
// descriptors may exceed the first interval's by at most 2%.
func verdict(samples []sample) error {
	if len(samples) < 4 {
		fmt.Println("too few samples for a verdict")
		return nil
	}
	base := samples[1] // the first one after a full interval of traffic
	half := samples[len(samples)/2:]
	var problems []string
	for _, s := range half {
		if s.rssKiB > half[0].rssKiB*110/100 {
			problems = append(problems, fmt.Sprintf("RSS %d KiB at %s, %d KiB at %s", s.rssKiB, s.at, half[0].rssKiB, half[0].at))
		}
		if s.goroutines > base.goroutines*102/100+10 {
			problems = append(problems, fmt.Sprintf("goroutines %d at %s, %d at %s", s.goroutines, s.at, base.goroutines, base.at))
		}
		if s.fds > base.fds*102/100+10 {
			problems = append(problems, fmt.Sprintf("fds %d at %s, %d at %s", s.fds, s.at, base.fds, base.at))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("not flat: %s", strings.Join(problems, "; "))
	}
	fmt.Println("flat: RSS within 10% over the second half, goroutines and file descriptors within 2% of the first interval")
	return nil
}

// printCurves draws each series as a row of bars scaled to its own maximum.
func printCurves(samples []sample) {
	bars := []rune(" ▁▂▃▄▅▆▇█")
	series := []struct {
		name string
		get  func(sample) int64
	}{
		{"RSS", func(s sample) int64 { return s.rssKiB }},
		{"goroutines", func(s sample) int64 { return s.goroutines }},
		{"fds", func(s sample) int64 { return s.fds }},
		{"streams", func(s sample) int64 { return s.open }},
	}
	fmt.Println("curves (each from its minimum to its maximum; a flat series stays low):")
	for _, se := range series {
		lo, hi := se.get(samples[0]), se.get(samples[0])
		for _, s := range samples {
			lo, hi = min(lo, se.get(s)), max(hi, se.get(s))
		}
		var b strings.Builder
		for _, s := range samples {
			b.WriteRune(bars[(se.get(s)-lo)*int64(len(bars)-1)/max(hi-lo, 1)])
		}
		fmt.Printf("  %-11s %s  min %d, max %d\n", se.name, b.String(), lo, hi)
	}
}

// svg draws the four series in one chart, each normalized to its maximum.
func svg(samples []sample) []byte {
	const w, h, pad = 720, 300, 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`, pad, h-pad, w-pad, h-pad)
	colors := []string{"#c0392b", "#2980b9", "#27ae60", "#8e44ad"}
	names := []string{"RSS", "goroutines", "fds", "streams"}
	get := []func(sample) int64{
		func(s sample) int64 { return s.rssKiB }, func(s sample) int64 { return s.goroutines },
		func(s sample) int64 { return s.fds }, func(s sample) int64 { return s.open },
	}
	last := samples[len(samples)-1].at
	for k := range names {
		var top int64 = 1
		for _, s := range samples {
			top = max(top, get[k](s))
		}
		var pts []string
		for _, s := range samples {
			x := pad + float64(w-2*pad)*float64(s.at)/float64(max(last, 1))
			y := float64(h-pad) - float64(h-2*pad)*float64(max(get[k](s), 0))/float64(top)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, colors[k], strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s (max %d)</text>`, pad+k*160, 20, colors[k], names[k], top)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d">0</text><text x="%d" y="%d" text-anchor="end">%s</text></svg>`, pad, h-pad+16, w-pad, h-pad+16, last)
	return []byte(b.String())
}

func build() (string, error) {
	dir, err := os.MkdirTemp("", "crier-soak-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "crier")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build (run from the repository root): %v\n%s", err, out)
	}
	return bin, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitHealthy(addr string) error {
	for range 200 {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("crier did not answer /healthz on %s", addr)
}

// raiseFileLimit lifts the soft limit on open files to the hard one: each stream is a
// descriptor here and in crier (which inherits the limit).
func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
