package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// healthcheck requests /healthz on addr, over HTTPS when useTLS, and returns 0 when it
// answers 200, 1 otherwise. It exists for Docker's HEALTHCHECK in an image that has no
// shell or curl.
func healthcheck(addr string, useTLS bool, stderr io.Writer) int {
	host, port, _ := net.SplitHostPort(addr) // validated by parseConfig
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	scheme, transport := "http", http.DefaultTransport.(*http.Transport).Clone()
	if useTLS {
		// The address is this container's own listener, reached on loopback or the
		// host it binds: what is checked is that crier answers, not who it is, and its
		// certificate names a public host, not this address.
		scheme = "https"
		transport.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	url := scheme + "://" + net.JoinHostPort(host, port) + "/healthz"
	client := &http.Client{Timeout: 5 * time.Second, Transport: transport}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(stderr, "crier healthcheck: %s: %v\n", url, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "crier healthcheck: %s answered %s\n", url, resp.Status)
		return 1
	}
	return 0
}
