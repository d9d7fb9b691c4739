package testenv

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// Eventually calls cond until it returns nil, and fails the test with cond's last error
// when that has not happened within the given time. cond's error says what is still
// awaited ("3 of 20 streams subscribed"); a cond that calls t.Fatal ends the wait at
// once. It is the tests' one polling loop (Poll is the same loop without the test).
func Eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	if err := Poll(within, cond); err != nil {
		t.Fatalf("not within %s: %v", within, err)
	}
}

// Poll calls cond until it returns nil, and returns cond's last error when that has not
// happened within the given time. It is Eventually for a goroutine other than the
// test's, which must not end the test (t.Fatal) and reports with t.Error instead.
//
// The pause between calls grows from 10 ms to 100 ms: a condition met at once is seen
// at once, and one that costs something to check (a stream opened and announced to
// hundreds of others, a docker inspect) is not checked a hundred times a second on a
// loaded machine.
func Poll(within time.Duration, cond func() error) error {
	deadline := time.Now().Add(within)
	pause := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(pause)
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// WaitOK polls url with client until it answers 200, and fails the test when it has not
// within the given time, or as soon as gone (called between tries) says why the server
// it waits for is no longer there. A nil client means http.DefaultClient.
func WaitOK(t testing.TB, client *http.Client, url string, within time.Duration, gone func() string) {
	t.Helper()
	Eventually(t, within, func() error {
		err := GetOK(client, url)
		if err == nil {
			return nil
		}
		if why := gone(); why != "" {
			t.Fatalf("%s (last error: %v)", why, err)
		}
		return fmt.Errorf("GET %s did not answer 200 (last error: %v)", url, err)
	})
}

// GetOK sends GET url with client (nil: http.DefaultClient) and returns an error unless
// the answer is 200.
func GetOK(client *http.Client, url string) error {
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
