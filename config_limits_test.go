package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestLimitFlags(t *testing.T) {
	c, _, err := parseConfig(nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxStreamsPerIP != 0 || c.HeaderTimeout != 10*time.Second {
		t.Fatalf("defaults: max-streams-per-ip %d, header-timeout %s; want 0 and 10s", c.MaxStreamsPerIP, c.HeaderTimeout)
	}
	c, _, err = parseConfig([]string{"-header-timeout", "3s"},
		env(map[string]string{"CRIER_MAX_STREAMS_PER_IP": "100", "CRIER_HEADER_TIMEOUT": "1m"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxStreamsPerIP != 100 || c.HeaderTimeout != 3*time.Second {
		t.Fatalf("from env and flags: %d %s, want 100 and 3s (the flag wins)", c.MaxStreamsPerIP, c.HeaderTimeout)
	}

	for _, tc := range []struct{ args []string }{
		{[]string{"-max-streams-per-ip", "-1"}},
		{[]string{"-max-streams-per-ip", "lots"}},
		{[]string{"-header-timeout", "0s"}},
		{[]string{"-header-timeout", "slow"}},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tc.args, env(nil), &stdout, &stderr); code != 2 {
			t.Fatalf("%v: exit %d, want 2", tc.args, code)
		}
		if line := stderr.String(); strings.Count(line, "\n") != 1 || !strings.Contains(line, tc.args[0]) || !strings.Contains(line, tc.args[1]) {
			t.Errorf("%v: stderr %q, want one line naming the flag and value", tc.args, line)
		}
	}

	var stdout bytes.Buffer
	run(context.Background(), []string{"-h"}, env(nil), &stdout, &bytes.Buffer{})
	for _, want := range []string{"-max-streams-per-ip", "CRIER_MAX_STREAMS_PER_IP", "-header-timeout", "CRIER_HEADER_TIMEOUT"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("-h output lacks %s", want)
		}
	}
}
