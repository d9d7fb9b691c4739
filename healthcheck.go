package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// healthcheck requests /healthz on addr and returns 0 when it answers 200, 1 otherwise.
// It exists for Docker's HEALTHCHECK in an image that has no shell or curl.
func healthcheck(addr string, stderr io.Writer) int {
	host, port, _ := net.SplitHostPort(addr) // validated by parseConfig
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/healthz"
	client := &http.Client{Timeout: 5 * time.Second}
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
