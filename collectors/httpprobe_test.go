package collectors

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"livedash/config"
)

func TestHTTPProbe(t *testing.T) {
	ok := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hi")) }))
	defer ok.Close()
	teapot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(418) }))
	defer teapot.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	cfg := config.Default().Collectors
	cfg.HTTP.Targets = []config.HTTPTarget{
		{Name: "tls", URL: ok.URL},
		{Name: "teapot", URL: teapot.URL, ExpectedStatus: 418, Method: "HEAD"},
		{Name: "wrong_status", URL: teapot.URL},
		{Name: "slow", URL: slow.URL, Timeout: config.Duration(200 * time.Millisecond)},
		{Name: "refused", URL: closedURL},
	}
	jobs, err := newHTTPProbe(&cfg, testEnv(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	p := jobs[0].c.(*httpProbe)
	p.setRootCAs(ok.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs)
	defer p.transport.CloseIdleConnections()

	samples, err := p.collect(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, s := range samples {
		key := s.Name + "/" + s.Labels["target"] + "/" + s.Labels["phase"]
		got[key] = s.Value
	}
	for key, want := range map[string]float64{
		"http_up/tls/": 1, "http_status_code/tls/": 200,
		"http_up/teapot/": 1, "http_status_code/teapot/": 418,
		"http_up/wrong_status/": 0, "http_status_code/wrong_status/": 418,
		"http_up/slow/": 0, "http_up/refused/": 0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	for _, key := range []string{"http_duration_seconds/tls/connect", "http_duration_seconds/tls/tls",
		"http_duration_seconds/tls/first_byte", "http_duration_seconds/tls/total"} {
		if v, ok := got[key]; !ok || v <= 0 || v > 5 {
			t.Errorf("%s = %v (present %v)", key, v, ok)
		}
	}
	// httptest's certificate is valid until 2084.
	if v := got["http_cert_remaining_seconds/tls/"]; v < 365*86400 {
		t.Errorf("cert remaining = %v", v)
	}
	if _, ok := got["http_cert_remaining_seconds/teapot/"]; ok {
		t.Error("cert sample for a plain http target")
	}
	for _, name := range []string{"wrong_status", "slow", "refused"} {
		if v := counterValue(t, p.targets[indexOfTarget(p, name)].errs); v != 1 {
			t.Errorf("%s errors = %v", name, v)
		}
	}
	for key := range got {
		if strings.HasPrefix(key, "http_duration_seconds/refused/") && !strings.HasSuffix(key, "total") {
			t.Errorf("phase sample for a refused connection: %s", key)
		}
	}
}

func indexOfTarget(p *httpProbe, name string) int {
	for i, t := range p.targets {
		if t.name == name {
			return i
		}
	}
	return -1
}
