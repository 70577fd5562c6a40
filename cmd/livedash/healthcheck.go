package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runHealthcheck asks a running livedash whether it is ready: exit 0 on a
// 200 from the URL, 1 otherwise. It is the image's HEALTHCHECK (the image
// has no shell and no curl). /readyz needs no login.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("livedash healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:7070/readyz", "URL to GET; ready when it answers 200")
	insecure := fs.Bool("insecure", false, "accept any TLS certificate (a certificate for the public name, checked on loopback)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if help, err := parseFlags(fs, args, stdout, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("healthcheck: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return usageErr("healthcheck: %v", err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: *insecure}} //nolint:gosec // asked for by --insecure
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", *url, resp.Status)
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}
