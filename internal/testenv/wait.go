package testenv

import (
	"net/http"
	"testing"
	"time"
)

// WaitOK polls url with client until it answers 200, and fails the test when it has not
// within the given time, or as soon as gone (called between tries) says why the server
// it waits for is no longer there. A nil client means http.DefaultClient.
func WaitOK(t testing.TB, client *http.Client, url string, within time.Duration, gone func() string) {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	deadline := time.Now().Add(within)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if why := gone(); why != "" {
			t.Fatalf("%s (last error: %v)", why, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s did not answer 200 within %s (last error: %v)", url, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
