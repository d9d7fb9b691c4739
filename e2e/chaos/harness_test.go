package chaos_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crierhq/crier/e2e/internal/sseconn"
	"github.com/crierhq/crier/internal/testenv"
)

// scale is how big a chaos run is.
type scale struct {
	subscribers int
	events      int // published in all
	topics      int
	publishers  int // concurrent publishers; each owns some topics, so per topic order is known
	// A connection lives a random time in [minLife, maxLife] before the client ends it.
	minLife, maxLife time.Duration
	settle           time.Duration // after the last publish, how long subscribers have to catch up
}

// short is what CI runs (seconds); CRIER_LONG=1 runs the full size.
var (
	short = scale{subscribers: 40, events: 3000, topics: 10, publishers: 4,
		minLife: 50 * time.Millisecond, maxLife: 600 * time.Millisecond, settle: 60 * time.Second}
	long = scale{subscribers: 200, events: 50000, topics: 40, publishers: 8,
		minLife: 300 * time.Millisecond, maxLife: 4 * time.Second, settle: 3 * time.Minute}
)

func scaleFor(t *testing.T) scale {
	if os.Getenv("CRIER_LONG") == "1" {
		t.Log("CRIER_LONG=1: full size")
		return long
	}
	return short
}

const token = "chaos-token"

// nodes is the set of crier addresses clients may use; a killed node is taken out.
type nodes struct {
	mu    sync.Mutex
	addrs []string
}

func (n *nodes) pick(rng *rand.Rand) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addrs[rng.IntN(len(n.addrs))]
}

func (n *nodes) remove(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, a := range n.addrs {
		if a == addr {
			n.addrs = append(n.addrs[:i], n.addrs[i+1:]...)
			return
		}
	}
}

// run is one chaos run: publishers put numbered events on topics (stream 0 is the
// broadcast, streams 1..topics the topics), subscribers follow a few of them and keep
// disconnecting, and every subscriber must end with each of its streams complete, in
// order, without a duplicate.
type run struct {
	t     *testing.T
	sc    scale
	nodes *nodes

	totals    []int64 // events published per stream; final once done is closed
	published atomic.Int64
	done      chan struct{}

	// counters for the report
	retries, connects, refused, resets, closes, received, presence atomic.Int64
}

func newRun(t *testing.T, sc scale, addrs []string) *run {
	return &run{t: t, sc: sc, nodes: &nodes{addrs: addrs}, totals: make([]int64, sc.topics+1), done: make(chan struct{})}
}

// topicParam is the query for publishing to stream i; stream 0 is the broadcast.
func topicParam(i int) string {
	if i == 0 {
		return ""
	}
	return "topic=c" + strconv.Itoa(i)
}

var publishClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

// publishKeyed posts body as text to the node's /publish?query with an Idempotency-Key
// and returns the answer's status and body; err is a transport error.
func publishKeyed(node, query, body, key string) (int, []byte, error) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+node+"/publish?"+query, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Idempotency-Key", key)
	resp, err := publishClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, nil
}

// publish sends event seq of stream i until a node accepts it. The Idempotency-Key makes
// the retries safe: a publish whose answer was lost (a killed node, Redis going away)
// may have been stored, and must not be delivered twice.
func (r *run) publish(rng *rand.Rand, i int, seq int64) error {
	key := fmt.Sprintf("chaos-%d-%d", i, seq)
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			r.retries.Add(1)
			if time.Now().After(deadline) {
				return fmt.Errorf("event %d:%d not accepted within 2 minutes", i, seq)
			}
			time.Sleep(time.Duration(min(attempt, 10)) * 50 * time.Millisecond)
		}
		q := "event=chaos"
		if p := topicParam(i); p != "" {
			q += "&" + p
		}
		status, body, err := publishKeyed(r.nodes.pick(rng), q, fmt.Sprintf("%d:%d", i, seq), key)
		switch {
		case err != nil:
			continue
		case status == http.StatusOK:
			return nil
		case status >= 500 || status == http.StatusTooManyRequests:
			continue
		default:
			return fmt.Errorf("publish %d:%d: %d %s", i, seq, status, body)
		}
	}
}

// waitPublished returns once n events are published, or publishing has ended (which it
// does within execute's ten minutes).
func (r *run) waitPublished(n int) {
	_ = testenv.Poll(10*time.Minute, func() error {
		select {
		case <-r.done:
			return nil
		default:
		}
		if got := r.published.Load(); got < int64(n) {
			return fmt.Errorf("%d of %d events published", got, n)
		}
		return nil
	})
}

// publishAll runs the publishers to the end and then closes r.done. Publisher w owns the
// streams i with i % publishers == w, and publishes each one's events in order.
func (r *run) publishAll() error {
	sc := r.sc
	var wg sync.WaitGroup
	errs := make(chan error, sc.publishers)
	counts := make([][]int64, sc.publishers)
	for w := range sc.publishers {
		counts[w] = make([]int64, sc.topics+1)
		share := sc.events / sc.publishers
		if w == 0 {
			share += sc.events % sc.publishers
		}
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			var own []int
			for i := w; i <= sc.topics; i += sc.publishers {
				own = append(own, i)
			}
			for range share {
				i := own[rng.IntN(len(own))]
				if i == 0 && rng.IntN(10) != 0 {
					i = own[len(own)-1] // broadcasts are rarer: each one reaches everybody
				}
				counts[w][i]++
				if err := r.publish(rng, i, counts[w][i]); err != nil {
					errs <- err
					return
				}
				r.published.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for w := range counts {
		for i, n := range counts[w] {
			r.totals[i] += n
		}
	}
	close(r.done)
	return <-errs
}

// subscriber is one client that keeps reconnecting with its last id.
type subscriber struct {
	r       *run
	n       int
	streams []int         // always 0, the broadcasts
	next    map[int]int64 // next expected seq per stream
	lastID  string
	last    uint64
	errs    []string
	nerrs   int
	node    string   // the node of the current connection
	recent  []string // the last few things seen, for the report of the first problem
}

func (s *subscriber) note(format string, args ...any) {
	if len(s.recent) == 8 {
		s.recent = append(s.recent[:0], s.recent[1:]...)
	}
	s.recent = append(s.recent, fmt.Sprintf(format, args...))
}

func (s *subscriber) fail(format string, args ...any) {
	s.nerrs++
	if s.nerrs == 1 {
		s.errs = append(s.errs, fmt.Sprintf(format, args...)+" [on "+s.node+"; before it: "+strings.Join(s.recent, " | ")+"]")
	} else if len(s.errs) < 5 {
		s.errs = append(s.errs, fmt.Sprintf(format, args...))
	}
}

func (s *subscriber) complete() bool {
	for _, i := range s.streams {
		if s.next[i] != s.r.totals[i]+1 {
			return false
		}
	}
	return true
}

func (s *subscriber) query() string {
	var q []string
	for _, i := range s.streams {
		if p := topicParam(i); p != "" {
			q = append(q, p)
		}
	}
	return "/events?" + strings.Join(q, "&")
}

// take checks one event.
func (s *subscriber) take(ev sseconn.Event) {
	s.r.received.Add(1)
	defer s.note("%s %s %.40q", ev.ID, ev.Name, ev.Data)
	if ev.ID == "" {
		s.fail("event %s %q without an id", ev.Name, ev.Data)
		return
	}
	id, err := strconv.ParseUint(ev.ID, 10, 64)
	if err != nil || id <= s.last {
		s.fail("id %s after %d: ids must increase along a stream and across a resume", ev.ID, s.last)
	}
	s.lastID, s.last = ev.ID, id
	switch ev.Name {
	case "new_user", "user_left":
		s.r.presence.Add(1)
	case "missed":
		s.fail("missed notice, although history covers the whole run: %s", ev.Data)
	case "chaos":
		a, b, _ := strings.Cut(ev.Data, ":")
		i, err1 := strconv.Atoi(a)
		seq, err2 := strconv.ParseInt(b, 10, 64)
		want, ok := s.next[i]
		switch {
		case err1 != nil || err2 != nil:
			s.fail("unreadable data %q", ev.Data)
		case !ok:
			s.fail("event %s of a stream it does not follow", ev.Data)
		case seq < want:
			s.fail("duplicate: %d:%d again (next expected %d)", i, seq, want)
		case seq > want:
			s.fail("gap: %d:%d when %d:%d was expected", i, seq, i, want)
			s.next[i] = seq + 1
		default:
			s.next[i] = seq + 1
		}
	default:
		s.fail("unexpected event %s %q", ev.Name, ev.Data)
	}
}

// loop connects and reconnects until it has everything, after publishing ended, or
// until the deadline. ready is called once the first connection has given an id.
func (s *subscriber) loop(rng *rand.Rand, ready func(), deadline time.Time) {
	r := s.r
	first := true
	for time.Now().Before(deadline) {
		finished := false
		select {
		case <-r.done:
			finished = true
			if s.complete() {
				return
			}
		default:
		}
		header := http.Header{}
		if s.lastID != "" {
			header.Set("Last-Event-ID", s.lastID)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.node = r.nodes.pick(rng)
		s.note("connect to %s after %s", s.node, s.lastID)
		st, err := sseconn.Open(ctx, s.node, s.query(), header)
		cancel()
		if err != nil {
			r.refused.Add(1)
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if err := st.Expect200(); err != nil {
			r.refused.Add(1)
			if !strings.Contains(err.Error(), "503") {
				s.fail("reconnect refused: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		r.connects.Add(1)
		var timer *time.Timer
		arm := func() {
			if finished {
				// No more chaos: end the connection now and then only to check progress.
				timer = time.AfterFunc(time.Second, func() { st.Close() })
				return
			}
			life := r.sc.minLife + time.Duration(rng.Int64N(int64(r.sc.maxLife-r.sc.minLife)))
			abrupt := rng.IntN(2) == 0
			end := func() {
				if abrupt {
					r.resets.Add(1)
					st.Reset()
				} else {
					r.closes.Add(1)
					st.Close()
				}
			}
			timer = time.AfterFunc(life, end)
		}
		if s.lastID != "" {
			arm() // with an id to resume from, this connection may go at any time
		}
		for {
			ev, err := st.Next()
			if err != nil {
				s.note("%v", err)
				break
			}
			s.take(ev)
			if first {
				first = false
				ready()
			}
			if timer == nil {
				arm()
			}
			if finished && s.complete() {
				break
			}
		}
		if timer != nil {
			timer.Stop()
		}
		st.Close()
	}
	select {
	case <-r.done:
	default:
		s.fail("publishing did not finish before the deadline")
		return
	}
	if !s.complete() {
		var missing []string
		for _, i := range s.streams {
			if s.next[i] != r.totals[i]+1 {
				missing = append(missing, fmt.Sprintf("stream %d at %d of %d", i, s.next[i]-1, r.totals[i]))
			}
		}
		s.fail("incomplete at the deadline: %s", strings.Join(missing, ", "))
	}
}

// execute runs the subscribers and the publishers; disaster, if not nil, runs alongside
// the publishers (it may kill nodes or restart Redis) and returns before they finish.
func (r *run) execute(disaster func()) {
	t, sc := r.t, r.sc
	start := time.Now()
	subs := make([]*subscriber, sc.subscribers)
	var readyWG sync.WaitGroup
	var wg sync.WaitGroup
	deadline := time.Now().Add(10 * time.Minute)
	for n := range subs {
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		s := &subscriber{r: r, n: n, streams: []int{0}, next: map[int]int64{0: 1}}
		for k := 1 + rng.IntN(3); len(s.streams) <= k; {
			i := 1 + rng.IntN(sc.topics)
			if _, ok := s.next[i]; !ok {
				s.streams = append(s.streams, i)
				s.next[i] = 1
			}
		}
		subs[n] = s
		readyWG.Add(1)
		var once sync.Once
		wg.Go(func() { s.loop(rng, func() { once.Do(readyWG.Done) }, deadline) })
	}
	readyCh := make(chan struct{})
	go func() { readyWG.Wait(); close(readyCh) }()
	select {
	case <-readyCh:
	case <-time.After(60 * time.Second):
		t.Fatalf("subscribers not connected within 60s")
	}
	t.Logf("%d subscribers connected in %s", sc.subscribers, time.Since(start).Round(time.Millisecond))

	pubStart := time.Now()
	var disasterWG sync.WaitGroup
	if disaster != nil {
		disasterWG.Go(disaster)
	}
	err := r.publishAll()
	pubTime := time.Since(pubStart)
	disasterWG.Wait()
	if err != nil {
		t.Errorf("publishing: %v", err)
	}
	// The subscribers are given sc.settle from here to catch up.
	settleBy := time.Now().Add(sc.settle)
	if settleBy.Before(deadline) {
		deadline = settleBy
	}
	waitCh := make(chan struct{})
	go func() { wg.Wait(); close(waitCh) }()
	select {
	case <-waitCh:
	case <-time.After(sc.settle + 30*time.Second):
		t.Fatalf("subscribers still running %s after the last publish", sc.settle+30*time.Second)
	}

	failed := 0
	for _, s := range subs {
		if s.nerrs > 0 {
			failed++
			if failed <= 10 {
				t.Errorf("subscriber %d (streams %v): %d problems, first: %s", s.n, s.streams, s.nerrs, strings.Join(s.errs, "; "))
			}
		}
	}
	t.Logf("%d events published in %s (%.0f/s), %d publish retries; %d connections (%d resets, %d clean closes by clients, %d refused or failed); %d events received (%d presence); whole run %s; %d of %d subscribers failed",
		r.published.Load(), pubTime.Round(time.Millisecond), float64(r.published.Load())/pubTime.Seconds(),
		r.retries.Load(), r.connects.Load(), r.resets.Load(), r.closes.Load(), r.refused.Load(),
		r.received.Load(), r.presence.Load(), time.Since(start).Round(time.Millisecond), failed, len(subs))
}
