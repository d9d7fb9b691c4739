package handlers

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestNoCapByDefault: with MaxStreamsPerAddr left at its default, the limiter counts
// nothing, so no number of streams from one address is ever refused (a cap of any size
// would have to count them).
func TestNoCapByDefault(t *testing.T) {
	var o Options
	o.setDefaults()
	l := newAddrLimiter(o.MaxStreamsPerAddr)
	r := httptest.NewRequest(http.MethodGet, "/events", nil)
	for i := range 10000 {
		if _, ok := l.acquire(r); !ok {
			t.Fatalf("stream %d from one address refused", i+1)
		}
	}
	if n := len(l.open); n != 0 {
		t.Fatalf("the limiter counts streams (%d addresses): a cap is in force", n)
	}
}
