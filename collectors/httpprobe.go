package collectors

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"livedash/config"
)

// httpProbe probes every configured URL once per tick, all targets
// concurrently, each on a fresh connection (so DNS, connect and TLS are
// measured every time). Per target, labelled target="<name>":
//
//	http_up                        1 if the request completed with the expected status
//	http_status_code               the response status (absent when no response)
//	http_duration_seconds{phase}   dns, connect, tls, first_byte (request sent →
//	                               first response byte), total
//	http_cert_remaining_seconds    time until the earliest certificate of the
//	                               served chain expires (HTTPS; base unit, divide
//	                               by 86400 for days)
//
// Redirects are not followed: the probe reports the URL as configured.
type httpProbe struct {
	targets   []*probeTarget
	transport *http.Transport
	client    *http.Client
	log       *slog.Logger
}

type probeTarget struct {
	name, url, method string
	expect            int
	timeout           time.Duration
	up                prometheus.Gauge
	errs              prometheus.Counter
	labels            labelSet // {target}
	phases            labelSet // {target, phase}
	failing           bool     // logged once per failure streak
}

func newHTTPProbe(c *config.Collectors, e env) ([]*job, error) {
	if len(c.HTTP.Targets) == 0 {
		return nil, nil
	}
	p := &httpProbe{log: e.log}
	p.transport = &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DisableKeepAlives:      true,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	p.client = &http.Client{
		Transport:     p.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, t := range c.HTTP.Targets {
		name := t.Name
		if name == "" {
			name = config.TargetName(t.URL)
		}
		method := t.Method
		if method == "" {
			method = config.DefaultHTTPMethod
		}
		p.targets = append(p.targets, &probeTarget{
			name: name, url: t.URL, method: method, expect: t.ExpectedStatus, timeout: t.Timeout.D(),
			up:   e.m.targetUp.WithLabelValues("http", name),
			errs: e.m.targetErrors.WithLabelValues("http", name),
		})
	}
	return []*job{{c: p}}, nil
}

// setRootCAs replaces the trusted roots (tests with httptest TLS servers).
func (p *httpProbe) setRootCAs(pool *x509.CertPool) {
	p.transport.TLSClientConfig = &tls.Config{RootCAs: pool}
}

func (p *httpProbe) collect(ctx context.Context, now time.Time) ([]Sample, error) {
	results := make([][]Sample, len(p.targets))
	errs := make([]error, len(p.targets))
	var wg sync.WaitGroup
	for i, t := range p.targets {
		wg.Go(func() { results[i], errs[i] = p.probe(ctx, t, now) })
	}
	wg.Wait()
	var out []Sample
	for i, r := range results {
		out = append(out, r...)
		t := p.targets[i]
		if errs[i] != nil {
			t.errs.Inc()
			t.up.Set(0)
			if !t.failing {
				p.log.Warn("http probe failed", "target", t.name, "err", errs[i])
			}
			t.failing = true
		} else {
			t.up.Set(1)
			t.failing = false
		}
	}
	// Failed probes are data (http_up 0), not collector errors.
	return out, nil
}

// probe runs one request. It always returns http_up; the error says why it
// is 0.
func (p *httpProbe) probe(ctx context.Context, t *probeTarget, now time.Time) ([]Sample, error) {
	if t.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.timeout)
		defer cancel()
	}
	var (
		mu                                     sync.Mutex // trace hooks may run on other goroutines
		dnsStart, dnsDone, connStart, connDone time.Time
		tlsStart, tlsDone, wrote, firstByte    time.Time
	)
	set := func(p *time.Time, first bool) {
		mu.Lock()
		defer mu.Unlock()
		if !first || p.IsZero() {
			*p = time.Now()
		}
	}
	trace := &httptrace.ClientTrace{
		DNSStart:             func(httptrace.DNSStartInfo) { set(&dnsStart, true) },
		DNSDone:              func(httptrace.DNSDoneInfo) { set(&dnsDone, false) },
		ConnectStart:         func(string, string) { set(&connStart, true) },
		ConnectDone:          func(string, string, error) { set(&connDone, false) },
		TLSHandshakeStart:    func() { set(&tlsStart, true) },
		TLSHandshakeDone:     func(tls.ConnectionState, error) { set(&tlsDone, false) },
		WroteRequest:         func(httptrace.WroteRequestInfo) { set(&wrote, false) },
		GotFirstResponseByte: func() { set(&firstByte, true) },
	}
	lbl := t.labels.get("target", t.name, "", "", "", "")
	down := []Sample{{Name: "http_up", Labels: lbl, Value: 0}}
	start := time.Now()
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), t.method, t.url, nil)
	if err != nil {
		return down, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("User-Agent", "livedash-probe")
	resp, err := p.client.Do(req)
	if err != nil {
		return down, redactURLError(err)
	}
	// Read (a bounded part of) the body so "total" includes the transfer.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	total := time.Since(start)

	mu.Lock()
	defer mu.Unlock()
	ok := resp.StatusCode == t.expect || (t.expect == 0 && resp.StatusCode >= 200 && resp.StatusCode < 300)
	up := 0.0
	if ok {
		up = 1
	}
	out := []Sample{
		{Name: "http_up", Labels: lbl, Value: up},
		{Name: "http_status_code", Labels: lbl, Value: float64(resp.StatusCode)},
	}
	phase := func(name string, from, to time.Time) {
		if !from.IsZero() && !to.IsZero() && !to.Before(from) {
			out = append(out, Sample{Name: "http_duration_seconds",
				Labels: t.phases.get("target", t.name, "phase", name, "", ""), Value: to.Sub(from).Seconds()})
		}
	}
	phase("dns", dnsStart, dnsDone)
	phase("connect", connStart, connDone)
	phase("tls", tlsStart, tlsDone)
	phase("first_byte", wrote, firstByte)
	out = append(out, Sample{Name: "http_duration_seconds",
		Labels: t.phases.get("target", t.name, "phase", "total", "", ""), Value: total.Seconds()})
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		earliest := resp.TLS.PeerCertificates[0].NotAfter
		for _, c := range resp.TLS.PeerCertificates[1:] {
			if c.NotAfter.Before(earliest) {
				earliest = c.NotAfter
			}
		}
		out = append(out, Sample{Name: "http_cert_remaining_seconds", Labels: lbl, Value: earliest.Sub(now).Seconds()})
	}
	if !ok {
		return out, fmt.Errorf("%w: status %d", errUnexpectedStatus, resp.StatusCode)
	}
	return out, nil
}

var errUnexpectedStatus = errors.New("collectors: unexpected status")
