package testenv

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"
)

// TestPoll runs Poll on a fake clock: it returns as soon as cond does, with cond's last
// error once the time is up, and checks at least once however short the time.
func TestPoll(t *testing.T) {
	for _, tc := range []struct {
		name      string
		within    time.Duration
		metAfter  int // cond returns nil from this call on; 0: never
		wantErr   string
		wantCalls int
	}{
		{"met at once", time.Second, 1, "", 1},
		{"met on the fifth call", time.Second, 5, "", 5},
		{"never met", time.Second, 0, "call 14", 14}, // 10+20+40+80+100*9 ms, then past the second
		{"no time at all", 0, 0, "call 1", 1},
		{"met on the last call in time", time.Second, 13, "", 13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				calls := 0
				err := Poll(tc.within, func() error {
					calls++
					if tc.metAfter > 0 && calls >= tc.metAfter {
						return nil
					}
					return fmt.Errorf("call %d", calls)
				})
				if got := errString(err); got != tc.wantErr || calls != tc.wantCalls {
					t.Errorf("Poll: error %q after %d calls, want %q after %d", got, calls, tc.wantErr, tc.wantCalls)
				}
			})
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestEventuallyFailsWithTheLastError checks the message a test that waited in vain ends with.
func TestEventuallyFailsWithTheLastError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Eventually(rec, time.Second, func() error { return errors.New("3 of 20 streams subscribed") })
		}()
		<-done
		if want := "not within 1s: 3 of 20 streams subscribed"; rec.fatal != want {
			t.Errorf("Eventually failed with %q, want %q", rec.fatal, want)
		}
	})
}

// recorder takes a test's Fatalf instead of failing it.
type recorder struct {
	testing.TB
	fatal string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit() // as t.Fatalf ends the test's goroutine
}
