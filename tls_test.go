package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crierhq/crier/internal/testenv"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir and returns their
// paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "crier test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// runCrier runs crier in this process with args on addr until the test ends, and waits
// until /healthz answers through client.
func runCrier(t *testing.T, base string, client *http.Client, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	logs := &testenv.Log{}
	go func() { done <- run(ctx, args, func(string) string { return "" }, io.Discard, logs) }()
	t.Cleanup(func() {
		if t.Failed() {
			defer func() { t.Logf("crier's log:\n%s", logs) }()
		}
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("crier exited %d after shutdown", code)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("crier did not stop within 10s of shutdown")
		}
	})
	testenv.WaitOK(t, client, base+"/healthz", 10*time.Second, func() string {
		select {
		case code := <-done:
			done <- code // for the cleanup
			return fmt.Sprintf("crier exited %d before serving", code)
		default:
			return ""
		}
	})
}

func TestHTTP2(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"tls", "h2c"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			addr := testenv.FreeAddr(t)
			args := []string{"-addr", addr, "-publish-token", "tok", "-log-level", "error"}
			tr := &http.Transport{}
			var p http.Protocols
			base := "http://" + addr
			if mode == "tls" {
				certFile, keyFile, pool := selfSigned(t, t.TempDir())
				args = append(args, "-tls-cert", certFile, "-tls-key", keyFile)
				tr.TLSClientConfig = &tls.Config{RootCAs: pool}
				p.SetHTTP2(true)
				base = "https://" + addr
			} else {
				args = append(args, "-h2c")
				p.SetUnencryptedHTTP2(true)
			}
			tr.Protocols = &p
			client := &http.Client{Transport: tr}
			t.Cleanup(tr.CloseIdleConnections)
			runCrier(t, base, client, args...)

			// crier healthcheck finds it with the same flags.
			if code := run(context.Background(), append(args, "healthcheck"), func(string) string { return "" }, io.Discard, io.Discard); code != 0 {
				t.Fatalf("crier healthcheck exited %d", code)
			}

			// Every stream and the scrape must share one connection. The connections are
			// the ones the requests got, not the ones dialled: start-up polling is not
			// what this checks.
			var connMu sync.Mutex
			conns := map[net.Conn]bool{}
			traced := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
				GotConn: func(info httptrace.GotConnInfo) {
					connMu.Lock()
					conns[info.Conn] = true
					connMu.Unlock()
				},
			})
			const n = 20
			var last string
			for i := range n {
				ctx, cancel := context.WithCancel(traced)
				t.Cleanup(cancel)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events", nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("stream %d: %v", i, err)
				}
				t.Cleanup(func() { resp.Body.Close() })
				if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
					t.Fatalf("stream %d: %s %s, want HTTP/2 200", i, resp.Proto, resp.Status)
				}
				last = firstData(t, resp.Body, "new_user")
			}
			if !strings.Contains(last, `"subscribers":20,`) {
				t.Fatalf("the 20th stream's new_user: %s, want subscribers 20", last)
			}
			req, _ := http.NewRequestWithContext(traced, http.MethodGet, base+"/metrics", nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			metrics, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, want := range []string{"\ncrier_subscribers 20\n", "\ngo_goroutines ", "\nprocess_resident_memory_bytes "} {
				if !strings.Contains(string(metrics), want) {
					t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
				}
			}
			connMu.Lock()
			defer connMu.Unlock()
			if len(conns) != 1 {
				t.Fatalf("the %d streams and the scrape went over %d connections, want 1", n, len(conns))
			}
		})
	}
}

// firstData reads an event stream up to the first event named name and returns its data.
func firstData(t *testing.T, r io.Reader, name string) string {
	t.Helper()
	sc := bufio.NewScanner(r)
	found := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "event: "+name:
			found = true
		case found && strings.HasPrefix(line, "data: "):
			return line[len("data: "):]
		}
	}
	t.Fatalf("stream ended before a %s event: %v", name, sc.Err())
	return ""
}

func TestTLSFlagsBadValues(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _ := selfSigned(t, t.TempDir())
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string // in the one line on stderr
	}{
		{[]string{"-tls-cert", certFile}, nil, "-tls-key"},
		{[]string{"-tls-key", keyFile}, nil, "-tls-cert"},
		{nil, map[string]string{"CRIER_TLS_CERT": certFile}, "-tls-key"},
		{[]string{"-tls-cert", certFile, "-tls-key", keyFile, "-h2c"}, nil, "-h2c"},
		{[]string{"-tls-cert", keyFile, "-tls-key", certFile}, nil, "-tls-cert"},
		{[]string{"-tls-cert", certFile + ".missing", "-tls-key", keyFile}, nil, "-tls-cert"},
		{[]string{"-h2c=maybe"}, nil, "-h2c"},
	} {
		var stderr strings.Builder
		getenv := func(k string) string { return tc.env[k] }
		args := append([]string{"-addr", "127.0.0.1:0"}, tc.args...)
		code := run(context.Background(), args, getenv, io.Discard, &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("crier %v (env %v): exit %d, stderr %q; want exit 2 and one line naming %s",
				tc.args, tc.env, code, stderr.String(), tc.want)
		}
	}
}
