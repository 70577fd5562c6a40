package main

// -tls, -basic and -h2: the load tool against a livedash that serves TLS
// (HTTP/2 offered through ALPN) and asks for a login, as configured by a
// web-config file (livedash serve --web.config.file; `livedash-bench
// gencert` writes one).
//
//	livedash-bench gencert -dir /tmp/lb -basic bench:secret
//	livedash serve --web.config.file /tmp/lb/web.yml … &
//	livedash-bench -url https://127.0.0.1:7070/api/v1/stream -basic bench:secret -pid $! -clients 10000
//	livedash-bench -scenario idle -h2 -url 'https://127.0.0.1:7070/api/v1/stream?topics=idle' -pid $! -clients 10000
//
// Every connection the tool opens goes through bench.dial (TLS when -tls,
// ALPN http/1.1), every request it writes by hand carries bench.authLine,
// and its few net/http requests (/metrics, the long poll's push) go
// through bench.httpClient. The server's certificate is not verified: this
// is a loopback benchmark against a certificate made for it (checkTarget
// refuses anything but 127.0.0.0/8).

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// addSecureFlags defines -tls, -basic and -h2.
func addSecureFlags(fs *flag.FlagSet, o *options) {
	fs.BoolVar(&o.tls, "tls", false, "dial TLS (ALPN http/1.1); an https -url implies it. The server's certificate is NOT verified: loopback benchmarks against a test certificate only")
	fs.StringVar(&o.basic, "basic", "", "user:password: a basic-auth login sent with every request (streams, long polls, the push, pipeline, /metrics)")
	fs.BoolVar(&o.h2, "h2", false, "idle: the streams multiplexed over HTTP/2 connections, 200 per connection (needs TLS)")
}

// checkSecure settles the TLS and login options against the target u
// (already checked by checkTarget): an https URL turns TLS on, and TLS
// makes the URL https.
func (o *options) checkSecure(u *url.URL) error {
	if u.Scheme == "https" {
		o.tls = true
	}
	if o.tls {
		u.Scheme = "https"
	}
	if o.basic != "" {
		if user, _, ok := strings.Cut(o.basic, ":"); !ok || user == "" {
			return errors.New("-basic: want user:password")
		}
	}
	if o.h2 && (!o.tls || o.scenario != "idle") {
		return errors.New("-h2: only with TLS (-tls or an https -url) and -scenario idle")
	}
	return nil
}

// tlsConfig is the client side of the loopback benchmark: no verification
// (the target is loopback, checked by checkTarget), no session resumption
// (every client pays a full handshake, as distinct browsers do), ALPN proto.
func tlsConfig(proto string) *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, NextProtos: []string{proto}} //nolint:gosec // loopback benchmark, see above
}

// dial opens client i's connection to the target from its source address:
// TCP, then with -tls a TLS handshake offering http/1.1.
func (b *bench) dial(ctx context.Context, i int) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: b.sourceIP(i)}, Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", b.target.Host)
	if err != nil || !b.o.tls {
		return conn, err
	}
	tc := tls.Client(conn, tlsConfig("http/1.1"))
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// authLine is the request header line carrying -basic ("" without it).
func (b *bench) authLine() string {
	if b.o.basic == "" {
		return ""
	}
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(b.o.basic)) + "\r\n"
}

// baseURL is the target's scheme and host: "https://127.0.0.1:7070".
func (b *bench) baseURL() string { return b.target.Scheme + "://" + b.target.Host }

// httpClient is a net/http client for the tool's own few requests to the
// target (not the load): TLS as dial does, the login on every request, and
// no kept connections (nothing is left behind when a scenario ends).
func (b *bench) httpClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{TLSClientConfig: tlsConfig("http/1.1"), DisableKeepAlives: true}
	return &http.Client{Timeout: timeout, Transport: basicAuth{tr, b.o.basic}}
}

// basicAuth sets the login on every request (user:password; none when "").
type basicAuth struct {
	next  http.RoundTripper
	login string
}

func (a basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	if a.login != "" {
		user, password, _ := strings.Cut(a.login, ":")
		r = r.Clone(r.Context())
		r.SetBasicAuth(user, password)
	}
	return a.next.RoundTrip(r)
}
