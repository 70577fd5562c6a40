package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"livedash/dashboard/testcert"
)

// tlsLoginServer starts livedash with TLS and one user, alice/wonderland.
func tlsLoginServer(t *testing.T) (*testServer, string, *http.Client) {
	t.Helper()
	web, certs := tlsLoginWebConfig(t, "")
	ts := startServer(t, "--web.config.file", web)
	return ts, "https://" + ts.Addr, tlsClient(t, certs)
}

// tlsLoginWebConfig writes a web config file serving TLS with a fresh test
// certificate and one user, alice/wonderland, followed by extra (YAML), and
// returns its path and the certificate.
func tlsLoginWebConfig(t *testing.T, extra string) (string, testcert.Files) {
	t.Helper()
	dir := t.TempDir()
	certs := testcert.Write(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("wonderland"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	web := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(web, []byte(fmt.Sprintf("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  alice: %s\n%s", hash, extra)), 0o600); err != nil {
		t.Fatal(err)
	}
	return web, certs
}

// tlsClient trusts certs and offers HTTP/2; its idle connections close when
// the test ends.
func tlsClient(t *testing.T, certs testcert.Files) *http.Client {
	client := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: certs.Pool}}}
	t.Cleanup(client.CloseIdleConnections)
	return client
}

func authedMetric(t *testing.T, client *http.Client, base, prefix string) float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.SetBasicAuth("alice", "wonderland")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

// The page over TLS (HTTP/2) behind basic auth, logged in the way a person
// does it — the browser asks, the person answers: every chart goes live
// over the shared worker's stream, the API calls and the polling code carry
// the login, and the server saw the stream authorized.
func TestBrowserTLSBasicAuth(t *testing.T) {
	ts, base, client := tlsLoginServer(t)
	_ = ts
	ctx := newBrowser(t, chromedp.Flag("ignore-certificate-errors", true))
	check := watchConsole(t, ctx)
	asked := make(chan struct{}, 16)
	// Answer the browser's login prompt as a person would, and let every
	// other request through.
	ectx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for e, err := range chromedp.Events(ectx, fetch.AuthRequired) {
			if err != nil {
				return
			}
			select {
			case asked <- struct{}{}:
			default:
			}
			go func() {
				_, _ = chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: e.RequestID,
					AuthChallengeResponse: &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: "alice", Password: "wonderland"}})
			}()
		}
	}()
	go func() {
		for e, err := range chromedp.Events(ectx, fetch.RequestPaused) {
			if err != nil {
				return
			}
			go func() {
				_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: e.RequestID})
			}()
		}
	}()
	yes := true
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &yes}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-asked:
	default:
		t.Error("the browser was never asked for a login")
	}
	waitFor(t, "every default chart with data", 60*time.Second, func() bool {
		ok, err := chartsReady(ctx, defaultTopics)
		return err == nil && ok
	})
	// A reconnect on the loaded machine passes through "connecting": wait
	// for the worker's stream to be live again rather than sample once.
	waitFor(t, "the shared worker's live stream", 20*time.Second, func() bool {
		d := debugOf(t, ctx)
		return d.Transport == "shared-worker" && d.State == "live" && d.Mode == "stream"
	})
	d := debugOf(t, ctx)
	if d.Transport != "shared-worker" || d.State != "live" || d.Mode != "stream" {
		t.Errorf("transport %q state %q mode %q, want the shared worker's live stream", d.Transport, d.State, d.Mode)
	}
	first := d.Charts["cpu"].LastSeq
	waitFor(t, "live frames on the cpu chart", 10*time.Second, func() bool { return debugOf(t, ctx).Charts["cpu"].LastSeq > first+1 })
	if n := authedMetric(t, client, base, "livedash_stream_connected "); n < 1 {
		t.Errorf("livedash_stream_connected = %v: the worker's stream did not get through", n)
	}
	// The polling code (the fallback when a proxy buffers the stream) with
	// the browser's login: a Hub in poll mode delivers frames.
	type pollResult struct {
		Got, Polls int
		LastError  string
	}
	polled, err := chromedp.Run(ctx, chromedp.Evaluate[pollResult](`import('/js/client.js').then((m) => new Promise((resolve) => {
	  const h = new m.Hub({ base: location.origin, pollWait: '1s' });
	  let got = 0;
	  h.add({ post(msg) { if (msg.type === 'frames') got += msg.frames.length; } });
	  h.need({ post() {} }, null, 'poll');
	  const until = Date.now() + 8000;
	  const tick = () => {
	    if (got >= 2 || Date.now() > until) { h.stop(); resolve({ got, polls: h.stats.polls, lastError: h.stats.lastError }); return; }
	    setTimeout(tick, 100);
	  };
	  tick();
	}))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("poll hub: %v", err)
	}
	t.Logf("polling under the login: %+v", polled)
	if polled.Got < 2 || polled.Polls < 1 || strings.Contains(polled.LastError, "401") {
		t.Errorf("the polling code under the login: %+v", polled)
	}
	screenshot(t, ctx, "livedash-tls-basic-auth.png")
	check()
}
