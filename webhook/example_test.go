package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/webhook"
)

// verified is how a backend checks a request, as the README shows it: the HMAC of the
// raw body, compared in constant time, before anything is parsed.
func verified(r *http.Request, secret []byte) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	return body, hmac.Equal([]byte(r.Header.Get("X-Crier-Signature")), []byte(want))
}

// A backend receives a stream's connect, signed.
func Example() {
	secret := []byte("the backend's secret")
	got := make(chan string, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := verified(r, secret)
		if !ok {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var msg struct {
			Events []struct{ Type, User string }
		}
		_ = json.Unmarshal(body, &msg)
		got <- fmt.Sprintf("%s %s", msg.Events[0].Type, msg.Events[0].User)
	}))
	defer backend.Close()

	s, err := webhook.New(webhook.Options{URL: backend.URL, Secret: secret})
	if err != nil {
		panic(err)
	}
	defer s.Close(context.Background())
	// A broker calls Observe, as broker.Options.Observe, for each stream's activity.
	s.Observe(broker.Activity{Kind: broker.ActivityConnect, Subscriber: "96f5e2a650709f17", User: "alice", Time: time.Now()})
	fmt.Println(<-got)
	// Output: connect alice
}
