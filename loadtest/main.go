// Command loadtest is crier's own load generator: one subcommand per scenario of the
// performance table (issue 4), each bounded in time, printing progress to stderr and one
// JSON line with its figures to stdout.
//
//	go run ./loadtest <scenario> [flags]
//	go run ./loadtest <scenario> -h
//
// Scenarios:
//
//	idle             open N streams and report the server's RSS growth per stream
//	fanout           N streams, a publisher at a fixed rate: deliveries/s, loss, latency
//	saturate         N streams, flow-controlled publishers as fast as delivery goes
//	overload         N streams, open-loop publishers at a rate above capacity: cut, refused, lost
//	publish-latency  POST /publish round trip while N streams are open
//	presence         attach storms: one after another, then in batches
//	herd             N clients arriving within a second, resuming with Last-Event-ID
//	smoke            all of the above, small and short (CI runs it)
//	chart            a series of stream counts: memory and latency, drawn as SVG
//
// It speaks HTTP/1.1 itself over raw TCP connections (status line, header, chunked
// decoding, SSE parsing: body.go, header.go, sse.go) and spreads them over many 127.1.x.y
// source addresses so that ephemeral ports never run out. It only connects to
// 127.0.0.0/8. A stream costs one 4 KiB buffer and no goroutine: a few event loops
// (epoll.go, one per core) make one read(2) per ready socket and parse what it brought.
// -engine goroutine reads each stream in a goroutine of its own through net.Conn
// instead, simpler and costlier, to cross-check the figures. Linux only (epoll, /proc).
//
// Latency is publish-to-receive: the publisher puts its wall clock (Unix nanoseconds)
// and a per-publisher sequence number in the event data; a stream takes its clock right
// after the read that brought the event, and counts gaps (lost), repeats (duplicated or
// reordered) and ids that do not increase.
//
// Measuring on a 2-core machine: pin the server and the tool to one core each, as the
// issue's figures were taken, with taskset from util-linux:
//
//	taskset -c 0 ./crier -presence=false -publish-token T &
//	taskset -c 1 go run ./loadtest fanout -token T
//
// (Better: go build -o /tmp/loadtest ./loadtest and pin the binary, so that the
// compiler does not share the core.) The final line reports server_cpu and tool_cpu,
// each a share of one core: a side near 1.0 was the bottleneck.
//
// Limits: the open-file hard limit here is 20,000 per process and cannot be raised; the
// tool raises its soft limit to it, so one process holds at most ~19,000 streams.
// Every scenario but presence wants the server started with -presence=false: with
// presence on, every attach is an event for every open stream.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are every scenario's flags; each scenario registers those it uses, with its
// own defaults.
type options struct {
	target, token, topic string
	pid                  int
	sources, concurrency int
	bufSize              int

	streams    int
	rate       float64
	duration   time.Duration
	size       int
	publishers int
	window     int
	openLoop   bool
	settle     time.Duration
	drain      time.Duration
	timeout    time.Duration

	sequential, batch int    // presence
	presenceEvent     string // presence

	arrive time.Duration // herd

	levels, out, in, title string // chart

	cpuProfile string
	engine     string
	loops      int
	spareProc  bool
}

type scenario struct {
	name, summary string
	flags         func(fs *flag.FlagSet, o *options)
	run           func(r *runner, ctx context.Context) (result, error)
}

var scenarios = []scenario{
	{"idle", "open -streams streams (server: -presence=false), wait, report the server's RSS growth per stream",
		func(fs *flag.FlagSet, o *options) {
			fs.IntVar(&o.streams, "streams", 19000, "streams to open")
			fs.DurationVar(&o.settle, "settle", 5*time.Second, "wait this long after the last stream opened before reading the RSS")
			fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "hard limit for the whole run")
		},
		func(r *runner, ctx context.Context) (result, error) { return r.idle(ctx) }},
	{"fanout", "-streams streams, one publisher at -rate events/s of -size bytes for -duration: deliveries/s, loss, latency",
		func(fs *flag.FlagSet, o *options) {
			loadFlags(fs, o, 10000, 50, 30*time.Second, 1)
		},
		func(r *runner, ctx context.Context) (result, error) { return r.load(ctx, "fanout") }},
	{"saturate", "-streams streams, -publishers keep-alive publishers as fast as delivery allows (see -window)",
		func(fs *flag.FlagSet, o *options) {
			loadFlags(fs, o, 1000, 0, 20*time.Second, 4)
			fs.IntVar(&o.window, "window", 16, "events each publisher may have ahead of the slowest stream; larger trades latency for\nthroughput; 0: none, publishers post back to back and the server slows them down")
		},
		func(r *runner, ctx context.Context) (result, error) {
			r.o.rate = 0
			return r.load(ctx, "saturate")
		}},
	{"overload", "-streams streams, -publishers open-loop publishers at -rate events/s in total (set it above what the server\n" +
		"delivers): streams cut (dropped_streams), accepted (published), refused (503), unsent, lost",
		func(fs *flag.FlagSet, o *options) {
			loadFlags(fs, o, 1000, 8000, 20*time.Second, 64)
			fs.Lookup("drain").DefValue = "30s"
			o.drain = 30 * time.Second
		},
		func(r *runner, ctx context.Context) (result, error) {
			r.o.openLoop = true
			return r.load(ctx, "overload")
		}},
	{"publish-latency", "POST /publish round trip (publish_p50_ms, publish_p99_ms) at -rate while -streams streams are open",
		func(fs *flag.FlagSet, o *options) {
			loadFlags(fs, o, 10000, 10, 20*time.Second, 1)
			fs.Lookup("spare-proc").DefValue = "true"
			o.spareProc = true
		},
		func(r *runner, ctx context.Context) (result, error) { return r.load(ctx, "publish-latency") }},
	{"presence", "attach -sequential streams one after another, then -streams streams -batch at a time (server: presence on);\n" +
		"time until every stream has seen every new_user (or -event join: every join in a room) it should",
		func(fs *flag.FlagSet, o *options) {
			fs.IntVar(&o.sequential, "sequential", 1000, "streams attached one after another (0: skip)")
			fs.IntVar(&o.streams, "streams", 5000, "streams attached in batches (0: skip)")
			fs.IntVar(&o.batch, "batch", 50, "streams attached at once in the batched storm")
			fs.StringVar(&o.presenceEvent, "event", "new_user", "the presence event counted: new_user, or join for a room storm\n(-topic a room; crier with -presence-topics matching it, and -presence=false to count rooms alone)")
			fs.DurationVar(&o.settle, "settle", 2*time.Second, "pause between the two storms")
			fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "limit for each storm")
		},
		func(r *runner, ctx context.Context) (result, error) { return r.presence(ctx) }},
	{"herd", "-streams clients arrive evenly within -arrive, each resuming with a Last-Event-ID (server: presence on):\n" +
		"time until every stream is live and has every new_user; none may be cut off or get missed",
		func(fs *flag.FlagSet, o *options) {
			fs.IntVar(&o.streams, "streams", 10000, "clients arriving")
			fs.DurationVar(&o.arrive, "arrive", time.Second, "the window they arrive in, evenly spread")
			fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "hard limit for the whole run")
		},
		func(r *runner, ctx context.Context) (result, error) { return r.herd(ctx) }},
	{"smoke", "every scenario at a small size for a few seconds; checks the tool works (ok, zero loss), not speed",
		func(fs *flag.FlagSet, o *options) {
			fs.IntVar(&o.streams, "streams", 200, "streams per phase")
			fs.DurationVar(&o.duration, "duration", 2*time.Second, "publishing time per phase")
			fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "hard limit for the whole run")
		},
		func(r *runner, ctx context.Context) (result, error) { return r.smoke(ctx) }},
	{"chart", "memory per stream and latency at each of -levels streams, written as an SVG chart to -out\n" +
		"(or, with -in, drawn from the JSON lines of earlier runs)",
		func(fs *flag.FlagSet, o *options) {
			loadFlags(fs, o, 0, 50, 10*time.Second, 1)
			fs.StringVar(&o.levels, "levels", "1000,2000,5000,10000,19000", "comma-separated stream counts")
			fs.StringVar(&o.out, "out", "loadtest-chart.svg", "SVG file to write")
			fs.StringVar(&o.in, "in", "", "draw from this file of JSON lines (fields streams, p50_ms, p99_ms, max_ms,\nkib_per_stream) instead of measuring")
			fs.StringVar(&o.title, "title", "", "the chart's title (default: what was measured)")
			fs.Lookup("timeout").DefValue = "30m0s"
			o.timeout = 30 * time.Minute
		},
		func(r *runner, ctx context.Context) (result, error) { return r.chart(ctx) }},
}

// loadFlags registers the flags of the publishing scenarios.
func loadFlags(fs *flag.FlagSet, o *options, streams int, rate float64, d time.Duration, publishers int) {
	if streams > 0 {
		fs.IntVar(&o.streams, "streams", streams, "streams to open")
	}
	if rate > 0 {
		fs.Float64Var(&o.rate, "rate", rate, "events published per second, in total")
	}
	fs.DurationVar(&o.duration, "duration", d, "how long to publish")
	fs.IntVar(&o.size, "size", 100, "bytes of each event's data (JSON with a timestamp, a sequence number and padding)")
	fs.IntVar(&o.publishers, "publishers", publishers, "concurrent publishers, each on its own keep-alive connection")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "pause between opening the streams and publishing")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "after publishing, how long to wait for the last deliveries")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "hard limit for the whole run")
}

func commonFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.target, "target", "http://127.0.0.1:8080", "crier's base URL; only 127.0.0.0/8 is allowed")
	fs.StringVar(&o.token, "token", os.Getenv("CRIER_PUBLISH_TOKEN"), "publish token (crier's -publish-token; default $CRIER_PUBLISH_TOKEN)")
	fs.StringVar(&o.topic, "topic", "load", "topic the streams subscribe to and events are published on (empty: broadcasts)")
	fs.IntVar(&o.pid, "pid", 0, "the server's pid, for its RSS and CPU (0: the process listening on the target's port)")
	fs.IntVar(&o.sources, "sources", 64, "loopback source addresses (127.1.x.y) to spread connections over")
	fs.IntVar(&o.concurrency, "concurrency", 256, "streams being opened at once")
	fs.IntVar(&o.bufSize, "read-buffer", 4096, "initial read buffer per stream, in bytes (it grows for longer lines)")
	fs.StringVar(&o.engine, "engine", "epoll", "how streams are read: epoll (a few event loops, one read per ready socket)\nor goroutine (a goroutine per stream through net.Conn: simpler, costlier)")
	fs.IntVar(&o.loops, "loops", runtime.NumCPU(), "event loops of the epoll engine")
	fs.BoolVar(&o.spareProc, "spare-proc", false, "one Go processor more than -loops, and loops that yield their thread every few\nhundred sockets, so that publishers never wait for a busy loop: right for measuring\nthe publish round trip (the default of publish-latency), costly for delivery latency")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the tool's own CPU profile to this file (to check the tool is not the bottleneck)")
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `loadtest: crier's load generator (issue 4). Usage:

  go run ./loadtest <scenario> [flags]     (go run ./loadtest <scenario> -h for its flags)

Scenarios:
`)
	for _, s := range scenarios {
		fmt.Fprintf(w, "  %-16s %s\n", s.name, strings.ReplaceAll(s.summary, "\n", "\n                   "))
	}
	fmt.Fprintf(w, `
Progress goes to stderr; the last line on stdout is JSON with the figures (streams,
deliveries_per_sec, p50_ms, p99_ms, max_ms, lost, duplicates, kib_per_stream, seconds ...).

Measure pinned, server and tool on a core each (taskset is in util-linux):
  taskset -c 0 ./crier -presence=false -publish-token T &
  go build -o /tmp/loadtest ./loadtest && taskset -c 1 /tmp/loadtest fanout -token T

Or one command that builds both, starts a fresh crier pinned and runs the scenario pinned:
  loadtest/bench.sh fanout -streams 2000 -duration 10s     (RUNS=3, CRIER_COMMIT=rev ...)

The open-file limit (20,000 here, hard) caps one process at ~19,000 streams.
Only 127.0.0.0/8 targets are accepted.
`)
}

// run is the tool from its arguments to its exit code: 0 when the scenario ran (its
// figures may still show loss), 1 when it could not, 2 for bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var sc *scenario
	for i := range scenarios {
		if scenarios[i].name == args[0] {
			sc = &scenarios[i]
		}
	}
	if sc == nil {
		fmt.Fprintf(stderr, "loadtest: unknown scenario %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	var o options
	fs := flag.NewFlagSet("loadtest "+sc.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	commonFlags(fs, &o)
	sc.flags(fs, &o)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "loadtest %s: %s\n\nFlags:\n", sc.name, sc.summary)
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nPin the server and the tool to a core each: taskset -c 0 ./crier ...; taskset -c 1 loadtest %s ...\n", sc.name)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest %s: unexpected argument %q\n", sc.name, fs.Arg(0))
		return 2
	}
	procs := max(o.loops, 1)
	if o.spareProc {
		procs++
	}
	runtime.GOMAXPROCS(procs)
	r, err := newRunner(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest %s: %v\n", sc.name, err)
		return 2
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	// A scenario stops by itself at the deadline; should one not, this ends the run.
	watchdog := time.AfterFunc(o.timeout+30*time.Second, func() {
		emit(stdout, result{Scenario: sc.name, Error: "stopped by the watchdog: the run overran -timeout"})
		os.Exit(1)
	})
	defer watchdog.Stop()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "loadtest %s: %v\n", sc.name, err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "loadtest %s: %v\n", sc.name, err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}

	defer r.close()
	res, err := sc.run(r, ctx)
	res.Scenario = sc.name
	res.ServerPID = r.pid
	res.Seconds = round3(time.Since(r.start).Seconds())
	code := 0
	if err != nil {
		res.Error = err.Error()
		r.logf("error: %v", err)
		code = 1
	} else if ctx.Err() != nil {
		r.logf("stopped at -timeout %s", o.timeout)
	}
	if res.OK != nil && !*res.OK {
		code = 1
	}
	emit(stdout, res)
	return code
}

func emit(w io.Writer, res result) {
	line, _ := json.Marshal(res)
	fmt.Fprintf(w, "%s\n", line)
}

// newRunner checks the options against the machine and finds the server.
func newRunner(o options, stderr io.Writer) (*runner, error) {
	r := &runner{o: o, stderr: stderr, start: time.Now(), serverCPU: -1}
	c, err := newClient(o.target, o.token, o.sources)
	if err != nil {
		return nil, err
	}
	r.c = c
	limit, err := raiseFileLimit()
	if err != nil {
		return nil, fmt.Errorf("raising the open-file limit: %v", err)
	}
	if need := max(o.streams, o.sequential) + o.publishers + 64; uint64(need) > limit && o.in == "" {
		return nil, fmt.Errorf("-streams %d needs about %d open files; the limit is %d, so at most %d streams per process",
			max(o.streams, o.sequential), need, limit, int(limit)-o.publishers-64)
	}
	if o.duration < 0 || o.rate < 0 || o.size < 0 || o.streams < 0 || o.timeout <= 0 {
		return nil, errors.New("durations, rates, sizes and counts must not be negative")
	}
	if o.publishers < 1 && (o.rate > 0 || o.window > 0) {
		return nil, errors.New("-publishers must be at least 1")
	}
	switch o.engine {
	case "epoll":
		table := newFDTable(limit)
		for range max(o.loops, 1) {
			l, err := newLoop(table, o.spareProc)
			if err != nil {
				r.close()
				return nil, err
			}
			r.loops = append(r.loops, l)
		}
	case "goroutine":
	default:
		return nil, fmt.Errorf("-engine %q: want epoll or goroutine", o.engine)
	}
	r.pid = o.pid
	if r.pid == 0 && o.in == "" {
		if pid, err := findListener(c.port); err == nil {
			r.pid = pid
		} else {
			r.logf("server pid unknown, so no RSS or server CPU: %v", err)
		}
	}
	if r.pid != 0 {
		r.logf("server pid %d", r.pid)
	}
	return r, nil
}
