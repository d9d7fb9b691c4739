package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/crierhq/crier/auth"
)

// patternList is a flag that may be repeated, each value a comma-separated list.
type patternList struct{ ps auth.Patterns }

func (l *patternList) String() string { return l.ps.String() }

func (l *patternList) Set(v string) error {
	ps, err := auth.ParsePatterns(v)
	if err != nil {
		return err
	}
	l.ps = append(l.ps, ps...)
	return nil
}

// mintToken is `crier token`: it prints an HS256 token granting the given topics, signed
// with the -jwt-key secret (key is its default, from the server's flags or CRIER_JWT_KEY).
// It returns the exit code: 0, or 2 with one line on stderr for bad input.
func mintToken(args []string, key string, now time.Time, stdout, stderr io.Writer) int {
	var subscribe, publish patternList
	fs := flag.NewFlagSet("crier token", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&subscribe, "subscribe", "topic `patterns` the token lets a stream follow (comma-separated; may be repeated)")
	fs.Var(&publish, "publish", "topic `patterns` the token lets a backend publish to (comma-separated; may be repeated)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	subject := fs.String("sub", "", "the token's subject (sub claim), such as a user id; for logs")
	// Not the flag's default: -h would print the secret.
	flagKey := fs.String("jwt-key", "", "HMAC `secret` to sign with (default: the server's -jwt-key or CRIER_JWT_KEY)")
	fs.Usage = func() {} // the flag package calls it on every error: no usage dump then
	usage := func() {
		fmt.Fprint(stdout, `Usage: crier token -subscribe PATTERNS [-publish PATTERNS] [-ttl 1h] [-sub ID]

Prints a JWT (HS256) that grants the topics given, signed with the -jwt-key secret
(or CRIER_JWT_KEY). A pattern is a topic name in which '*' matches any run of
characters, '/' included.

Flags:
`)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "crier token: "+format+"\n", a...)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return 0
		}
		return fail("%v", err)
	}
	if *flagKey != "" {
		key = *flagKey
	}
	switch {
	case fs.NArg() > 0:
		return fail("unexpected argument %q", fs.Arg(0))
	case len(subscribe.ps) == 0 && len(publish.ps) == 0:
		return fail("give the topics to grant with -subscribe or -publish")
	case *ttl <= 0:
		return fail("invalid value %q for flag -ttl: must be a positive duration", ttl.String())
	case key == "":
		return fail("no key: set -jwt-key or CRIER_JWT_KEY")
	case len(key) < auth.MinSecretLen:
		return fail("invalid value for flag -jwt-key (%d bytes, not shown): must be at least %d bytes", len(key), auth.MinSecretLen)
	case strings.ContainsAny(*subject, "\x00\r\n"):
		return fail("invalid value %q for flag -sub: must not contain control characters", *subject)
	}
	tok, err := auth.Sign([]byte(key), auth.Grants{Subscribe: subscribe.ps, Publish: publish.ps}, *subject, *ttl, now)
	if err != nil {
		return fail("%v", strings.TrimPrefix(err.Error(), "auth: "))
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
