package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"livedash/config"
	"livedash/dashboard"
)

// Target URLs with credentials in their user info and tokens in their
// query never reach config check's output, the log or /api/v1/status.
func TestSecretsRedacted(t *testing.T) {
	secrets := []string{"scrape-user", "pw-scrape-1", "tok-scrape-2", "probe-user", "pw-probe-3", "tok-probe-4"}
	cfgPath := filepath.Join(t.TempDir(), "livedash.yaml")
	// Port 1 on loopback refuses: both collectors fail and log why.
	err := os.WriteFile(cfgPath, []byte(`
collectors:
  prometheus:
    interval: 100ms
    targets:
      - url: http://scrape-user:pw-scrape-1@127.0.0.1:1/metrics?auth=tok-scrape-2
  http:
    interval: 100ms
    targets:
      - url: http://probe-user:pw-probe-3@127.0.0.1:1/health?token=tok-probe-4
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	check := func(where, text string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s shows %q:\n%s", where, s, text)
			}
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"config", "check", "--config", cfgPath}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	check("config check", out.String())
	if !strings.Contains(out.String(), "http://REDACTED@127.0.0.1:1/metrics?auth=REDACTED") {
		t.Errorf("config check does not show the redacted URL:\n%s", out.String())
	}

	ts := startServer(t, "--config", cfgPath)
	waitFor(t, "both collectors' failures in the log", 10*time.Second, func() bool {
		l := ts.Log.String()
		return strings.Contains(l, "http probe failed") && strings.Contains(l, "collector=prometheus")
	})
	var status bytes.Buffer
	resp, err := http.Get(ts.URL + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(&status, resp.Body)
	resp.Body.Close()
	if !strings.Contains(status.String(), `"last_error":"error"`) {
		t.Errorf("status does not report the failing targets: %s", status.String())
	}
	check("/api/v1/status", status.String())
	check("the log", ts.Log.String())
	if !strings.Contains(ts.Log.String(), "REDACTED") {
		t.Errorf("the log does not show the redacted URLs:\n%s", ts.Log.String())
	}
}

// Binding beyond loopback without users logs one WARN saying how to turn
// the login on; loopback, or users configured, log none.
func TestExposureWarning(t *testing.T) {
	users := &dashboard.WebConfig{Users: map[string][]byte{"admin": []byte("$2y$10$x")}}
	for _, tc := range []struct {
		listen string
		web    *dashboard.WebConfig
		warn   bool
	}{
		{"127.0.0.1:7070", nil, false},
		{"localhost:7070", nil, false},
		{"[::1]:7070", nil, false},
		{"127.0.0.2:7070", nil, false},
		{":7070", nil, true},
		{"0.0.0.0:7070", nil, true},
		{"[::]:7070", nil, true},
		{"192.0.2.1:7070", nil, true},
		{"dash.example.com:7070", nil, true},
		{"0.0.0.0:7070", &dashboard.WebConfig{}, true},
		{"0.0.0.0:7070", users, false},
	} {
		var buf bytes.Buffer
		cfg := config.Default()
		cfg.Listen = tc.listen
		warnExposure(slog.New(slog.NewTextHandler(&buf, nil)), cfg, tc.web)
		got := buf.String()
		if tc.warn != (got != "") {
			t.Errorf("%s (users %v): %q", tc.listen, tc.web != nil && len(tc.web.Users) > 0, got)
		}
		if tc.warn {
			for _, want := range []string{"level=WARN", "without a login", "basic_auth_users", "htpasswd -nBC 10", "--web.config.file", "http.web_config_file", "tls_server_config"} {
				if !strings.Contains(got, want) {
					t.Errorf("%s: the warning lacks %q: %s", tc.listen, want, got)
				}
			}
		}
	}
}

// A bad web configuration file stops serve (exit 2) before the store is
// opened, naming the problem; config check reports it too.
func TestServeRefusesBadWebConfig(t *testing.T) {
	dir := t.TempDir()
	web := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(web, []byte("tls_server_config:\n  cert_file: missing.pem\n  key_file: missing-key.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "x.db")
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0", "--store", store, "--web.config.file", web}, io.Discard, &stderr)
	if code := exitCode(err, &stderr); code != 2 || !strings.Contains(stderr.String(), "missing.pem") {
		t.Fatalf("serve: exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Fatalf("the store was opened despite the bad web config: %v", err)
	}
	stderr.Reset()
	err = run(context.Background(), []string{"config", "check", "--web.config.file", web}, io.Discard, &stderr)
	if code := exitCode(err, &stderr); code != 2 || !strings.Contains(stderr.String(), "missing.pem") {
		t.Fatalf("config check: exit %d: %s", code, stderr.String())
	}
}

// The binary with --web.config.file: TLS with h2, a login on the API,
// health open.
func TestServeTLSWithLogin(t *testing.T) {
	ts, base, client := tlsLoginServer(t)
	for _, tc := range []struct {
		path   string
		login  bool
		status int
	}{
		{"/healthz", false, 200}, {"/readyz", false, 200}, {"/api/v1/latest", false, 401}, {"/", false, 401},
		{"/api/v1/latest", true, 200}, {"/", true, 200}, {"/metrics", true, 200},
	} {
		req, _ := http.NewRequest("GET", base+tc.path, nil)
		if tc.login {
			req.SetBasicAuth("alice", "wonderland")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Proto != "HTTP/2.0" {
			t.Errorf("%s (login %v): %s %s, want %d over HTTP/2.0", tc.path, tc.login, resp.Proto, resp.Status, tc.status)
		}
	}
	if !strings.Contains(ts.Log.String(), "url=https://") {
		t.Errorf("the start-up line does not name https:\n%s", ts.Log.String())
	}
	// Plain HTTP on the TLS port is refused, not served.
	resp, err := http.Get("http://" + ts.Addr + "/api/v1/latest")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served on the TLS port")
		}
	}
}
