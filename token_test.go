package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/crierhq/crier/auth"
	"github.com/crierhq/crier/internal/testenv"
)

const testKey = "main-test-secret-at-least-32-bytes"

func TestTokenSubcommand(t *testing.T) {
	v, err := auth.NewVerifier(auth.Keys{Secret: []byte(testKey)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"key from the environment", []string{"token", "-subscribe", "user/42", "-publish", "user/*", "-ttl", "2h", "-sub", "42"},
			map[string]string{"CRIER_JWT_KEY": testKey}},
		{"key as a token flag", []string{"token", "-jwt-key", testKey, "-subscribe", "user/42,x", "-publish", "user/*", "-ttl", "2h", "-sub", "42"}, nil},
		{"key as a server flag", []string{"-jwt-key", testKey, "token", "-subscribe", "user/42", "-subscribe", "x", "-publish", "user/*", "-ttl", "2h", "-sub", "42"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, env(tc.env), &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			tok, err := v.Verify(strings.TrimSpace(stdout.String()))
			if err != nil {
				t.Fatalf("the printed token does not verify: %v", err)
			}
			if !tok.CanSubscribe("user/42") || tok.CanSubscribe("user/43") || !tok.CanPublish("user/43") || tok.Subject != "42" {
				t.Errorf("grants %+v, subject %q", tok.Grants, tok.Subject)
			}
			if left := time.Until(tok.Expires); left < 119*time.Minute || left > 2*time.Hour {
				t.Errorf("expires in %v, want 2h", left)
			}
		})
	}
}

func TestTokenSubcommandBadInput(t *testing.T) {
	keyEnv := map[string]string{"CRIER_JWT_KEY": testKey}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		mention string
	}{
		{"no grants", []string{"token"}, keyEnv, "-subscribe"},
		{"no key", []string{"token", "-subscribe", "a"}, nil, "-jwt-key"},
		{"short key", []string{"token", "-subscribe", "a", "-jwt-key", "tooshort"}, nil, "-jwt-key"},
		{"zero ttl", []string{"token", "-subscribe", "a", "-ttl", "0s"}, keyEnv, "-ttl"},
		{"bad ttl", []string{"token", "-subscribe", "a", "-ttl", "soon"}, keyEnv, "-ttl"},
		{"bad pattern", []string{"token", "-subscribe", "a\x01b"}, keyEnv, "-subscribe"},
		{"stray argument", []string{"token", "-subscribe", "a", "extra"}, keyEnv, "extra"},
		{"unknown flag", []string{"token", "-topics", "a"}, keyEnv, "-topics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, env(tc.env), &stdout, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, stderr.String())
			}
			line := stderr.String()
			if strings.Count(line, "\n") != 1 || !strings.Contains(line, tc.mention) {
				t.Errorf("stderr %q: want one line naming %s", line, tc.mention)
			}
			if stdout.Len() != 0 || strings.Contains(line, "tooshort") {
				t.Errorf("stdout %q, stderr %q", stdout.String(), line)
			}
		})
	}
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"token", "-h"}, env(keyEnv), &stdout, &bytes.Buffer{}); code != 0 ||
		!strings.Contains(stdout.String(), "-subscribe") || strings.Contains(stdout.String(), testKey) {
		t.Errorf("token -h: exit %d, %q", code, stdout.String())
	}
}

func TestAuthConfig(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	dir := t.TempDir()
	pubPath := filepath.Join(dir, "pub.pem")
	junkPath := filepath.Join(dir, "junk.pem")
	os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	os.WriteFile(junkPath, []byte("not a key"), 0o600)

	c, _, err := parseConfig(nil, env(nil), &bytes.Buffer{})
	if err != nil || c.tokens != nil || len(c.private) != 0 {
		t.Fatalf("defaults: %v, tokens %v, private %v", err, c.tokens, c.private)
	}
	c, _, err = parseConfig([]string{"-private-topics", " user/* , admin"}, env(map[string]string{
		"CRIER_JWT_KEY": testKey, "CRIER_JWT_PUBLIC_KEY": pubPath}), &bytes.Buffer{})
	if err != nil || c.tokens == nil || c.private.String() != "user/*,admin" {
		t.Fatalf("private topics with both keys: %v, tokens %v, private %q", err, c.tokens, c.private)
	}

	for _, tc := range []struct {
		name          string
		args          []string
		mention, hide string
	}{
		{"private topics without a key", []string{"-private-topics", "user/*"}, "-private-topics", ""},
		{"bad pattern", []string{"-jwt-key", testKey, "-private-topics", "a\x01"}, "-private-topics", ""},
		{"short secret", []string{"-jwt-key", "tooshort"}, "-jwt-key", "tooshort"},
		{"missing key file", []string{"-jwt-public-key", filepath.Join(dir, "none.pem")}, "none.pem", ""},
		{"not a key", []string{"-jwt-public-key", junkPath}, "junk.pem", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, env(nil), &stdout, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, stderr.String())
			}
			line := stderr.String()
			if strings.Count(line, "\n") != 1 || !strings.Contains(line, tc.mention) {
				t.Errorf("stderr %q: want one line naming %s", line, tc.mention)
			}
			if tc.hide != "" && strings.Contains(line, tc.hide) {
				t.Errorf("stderr %q shows the secret", line)
			}
		})
	}
}

// TestPrivateTopicsEndToEnd runs the real binary with both kinds of key: a token from
// `crier token` and one signed ES256 by "a backend" open a private stream; no token or
// the wrong grant does not.
func TestPrivateTopicsEndToEnd(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	pubPath := filepath.Join(t.TempDir(), "pub.pem")
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testenv.Start(t, []string{"-private-topics", "user/*", "-jwt-public-key", pubPath}, "CRIER_JWT_KEY="+testKey)

	var out bytes.Buffer
	if code := run(context.Background(), []string{"token", "-subscribe", "user/42"}, env(map[string]string{"CRIER_JWT_KEY": testKey}), &out, io.Discard); code != 0 {
		t.Fatalf("crier token: exit %d", code)
	}
	minted := strings.TrimSpace(out.String())
	backend, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"exp": time.Now().Add(time.Minute).Unix(), "crier": map[string]any{"subscribe": []string{"user/*"}},
	}).SignedString(ec)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, query, bearer string
		want                int
	}{
		{"no token", "topic=user/42", "", 401},
		{"crier token, query", "topic=user/42&access_token=" + minted, "", 200},
		{"crier token, other user", "topic=user/43", minted, 403},
		{"ES256 backend token", "topic=user/43", backend, 200},
		{"public topic", "topic=news", "", 200},
	} {
		req, _ := http.NewRequest(http.MethodGet, p.URL+"/events?"+tc.query, nil)
		if tc.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+tc.bearer)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", tc.name, err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s, want %d", tc.name, resp.Status, tc.want)
		}
		if tc.want == 200 {
			if line, _ := bufio.NewReader(resp.Body).ReadString('\n'); line != "retry: 3000\n" {
				t.Errorf("%s: opening %q", tc.name, line)
			}
		}
		cancel()
		resp.Body.Close()
	}
	if strings.Contains(p.Output(), minted) {
		t.Errorf("the log shows a token:\n%s", p.Output())
	}
}
