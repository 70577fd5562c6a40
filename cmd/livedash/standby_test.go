package main

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// unreachableRedis returns a Redis URL on a loopback port nothing listens
// on: the server keeps retrying it, and the standby answers meanwhile.
func unreachableRedis(t *testing.T) string {
	return fmt.Sprintf("redis://127.0.0.1:%d", freePort(t))
}

// standbyAnswer is one response of the standby, read whole.
type standbyAnswer struct {
	resp *http.Response
	body []byte
	code string // the JSON error's code, "" when the body is none
}

func standbyGet(t *testing.T, client *http.Client, url, password string) standbyAnswer {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if password != "" {
		req.SetBasicAuth("alice", password)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	a := standbyAnswer{resp: resp}
	a.body, _ = io.ReadAll(resp.Body)
	var e struct{ Error struct{ Code string } }
	if json.Unmarshal(a.body, &e) == nil {
		a.code = e.Error.Code
	}
	return a
}

// While Redis cannot be reached, the standby on the socket applies the web
// configuration as the server does: TLS with the configured certificate
// (HTTP/1.1 only, though the file leaves http2 on: every answer closes its
// connection), the configured response headers, and the login on every path
// but /healthz and /readyz — /metrics included, with the server's realm and
// error body. Plain HTTP on the port is not served.
func TestStandbyServesTLSWithLogin(t *testing.T) {
	web, certs := tlsLoginWebConfig(t, "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n")
	ts := startServer(t, "--config", redisConf(t, unreachableRedis(t), "standby", "node-a", time.Second, ""), "--web.config.file", web)
	base, client := "https://"+ts.Addr, tlsClient(t, certs)
	block, _ := pem.Decode(certs.PEM)
	if block == nil {
		t.Fatal("the test certificate is not PEM")
	}
	for _, tc := range []struct {
		path, password string
		status         int
		code           string // the JSON error's, "" for none
	}{
		{"/healthz", "", 200, ""},
		{"/readyz", "", 503, "store_unavailable"},
		{"/metrics", "", 401, "unauthorized"},
		{"/metrics", "not-the-password", 401, "unauthorized"},
		{"/metrics", "wonderland", 200, ""},
		{"/api/v1/stream", "", 401, "unauthorized"},
		{"/api/v1/frames", "", 401, "unauthorized"},
		{"/", "", 401, "unauthorized"},
		{"/api/v1/stream", "wonderland", 200, ""},
		{"/api/v1/frames", "wonderland", 503, "store_unavailable"},
	} {
		a := standbyGet(t, client, base+tc.path, tc.password)
		r := a.resp
		what := fmt.Sprintf("%s (password %q)", tc.path, tc.password)
		if r.StatusCode != tc.status || a.code != tc.code {
			t.Errorf("%s: %s code %q, want %d %q: %s", what, r.Status, a.code, tc.status, tc.code, a.body)
		}
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || !bytes.Equal(r.TLS.PeerCertificates[0].Raw, block.Bytes) {
			t.Errorf("%s: not over TLS with the configured certificate", what)
		} else if r.Proto != "HTTP/1.1" || r.TLS.NegotiatedProtocol != "http/1.1" {
			t.Errorf("%s: %s (ALPN %q), want HTTP/1.1", what, r.Proto, r.TLS.NegotiatedProtocol)
		}
		if !r.Close {
			t.Errorf("%s: the connection stays open", what)
		}
		if got := r.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("%s: Strict-Transport-Security %q, want the configured header", what, got)
		}
		challenge := r.Header.Get("WWW-Authenticate")
		if (r.StatusCode == 401) != (challenge == `Basic realm="livedash"`) {
			t.Errorf("%s: %s with WWW-Authenticate %q", what, r.Status, challenge)
		}
	}
	if a := standbyGet(t, client, base+"/metrics", "wonderland"); !strings.Contains(string(a.body), "livedash_store_redis_connect_failures_total") {
		t.Errorf("/metrics does not show the store's connection attempts:\n%s", a.body)
	}
	if a := standbyGet(t, client, base+"/api/v1/stream", "wonderland"); !strings.Contains(string(a.body), "retry: ") {
		t.Errorf("the stream has no retry: hint: %q", a.body)
	}

	// Plain HTTP on the port: net/http's TLS server answers a request that
	// is not a TLS handshake with a bare 400 at most, never the standby.
	resp, err := http.Get("http://" + ts.Addr + "/healthz")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("plain HTTP on the TLS port: %s %q", resp.Status, b)
		}
	}
	if !strings.Contains(ts.Log.String(), "url=https://") {
		t.Errorf("the start-up line does not name https:\n%s", ts.Log.String())
	}
}

// The web configuration's rate_limit holds on the standby too (one bucket
// for the process), except on /healthz and /readyz.
func TestStandbyRateLimit(t *testing.T) {
	web := writeConfig(t, "rate_limit:\n  interval: 1h\n  burst: 2\n")
	ts := startServer(t, "--config", redisConf(t, unreachableRedis(t), "standby", "node-a", time.Second, ""), "--web.config.file", web)
	for i, want := range []int{200, 200, 429, 429} {
		a := standbyGet(t, http.DefaultClient, ts.URL+"/metrics", "")
		if a.resp.StatusCode != want {
			t.Fatalf("/metrics #%d: %s, want %d: %s", i+1, a.resp.Status, want, a.body)
		}
		if want == 429 && (a.code != "rate_limited" || a.resp.Header.Get("Retry-After") == "") {
			t.Fatalf("/metrics #%d: code %q Retry-After %q", i+1, a.code, a.resp.Header.Get("Retry-After"))
		}
	}
	if a := standbyGet(t, http.DefaultClient, ts.URL+"/healthz", ""); a.resp.StatusCode != 200 {
		t.Fatalf("/healthz under the rate limit: %s", a.resp.Status)
	}
}
