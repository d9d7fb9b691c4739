package testenv

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// Eventually calls cond every few milliseconds until it returns nil, and fails the test
// with cond's last error when that has not happened within the given time. cond's error
// says what is still awaited ("3 of 20 streams subscribed"); a cond that calls t.Fatal
// ends the wait at once. It is the tests' one polling loop.
func Eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", within, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitOK polls url with client until it answers 200, and fails the test when it has not
// within the given time, or as soon as gone (called between tries) says why the server
// it waits for is no longer there. A nil client means http.DefaultClient.
func WaitOK(t testing.TB, client *http.Client, url string, within time.Duration, gone func() string) {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	Eventually(t, within, func() error {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if why := gone(); why != "" {
			t.Fatalf("%s (last error: %v)", why, err)
		}
		return fmt.Errorf("GET %s did not answer 200 (last error: %v)", url, err)
	})
}
