package auth_test

import (
	"fmt"
	"time"

	"github.com/crierhq/crier/auth"
)

func ExampleMatch() {
	fmt.Println(auth.Match("user/*", "user/42"))
	fmt.Println(auth.Match("user/*", "user/42/inbox"))
	fmt.Println(auth.Match("user/*", "users"))
	// Output:
	// true
	// true
	// false
}

func ExampleVerifier() {
	key := []byte("a secret of at least thirty-two bytes")
	issued := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tok, _ := auth.Sign(key, auth.Grants{Subscribe: auth.Patterns{"user/42"}}, "42", time.Hour, issued)

	v, _ := auth.NewVerifier(auth.Keys{Secret: key}, func() time.Time { return issued.Add(time.Minute) })
	t, err := v.Verify(tok)
	fmt.Println(err, t.CanSubscribe("user/42"), t.CanSubscribe("user/43"), t.Expires.UTC())
	// Output: <nil> true false 2026-11-25 13:00:00 +0000 UTC
}
