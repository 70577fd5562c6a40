package push

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"livedash/config"
)

func post(t *testing.T, url, auth, body string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func labels(n, size int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"l%d":"%s"`, i, strings.Repeat("v", size))
	}
	return `{"samples":[{"name":"x","labels":{` + b.String() + `},"value":1}]}`
}

// The pushes of the security review are refused with a status and a
// message naming the cap; nothing of them is stored.
func TestPushCaps(t *testing.T) {
	def := config.Default().Push
	app := &fakeAppender{}
	srv := newServer(t, app, config.Push{Token: token, MaxBodyBytes: 2 << 20, MaxSeriesPerTopic: 3, MaxTopics: 2})
	url := srv.URL + "/api/v1/push/"
	for _, tc := range []struct {
		name, topic, body string
		status            int
		code, cap         string
	}{
		{"20,000 labels", "a", labels(20_000, 1), 400, CodeTooManyLabels, fmt.Sprintf("push.max_labels is %d", def.MaxLabels)},
		{"33 labels", "a", labels(33, 1), 400, CodeTooManyLabels, "push.max_labels is 32"},
		{"900 KB label value", "a", labels(1, 900_000), 400, CodeLabelTooLong, "push.max_label_value_bytes is 1024"},
		{"long label name", "a", `{"samples":[{"name":"x","labels":{"` + strings.Repeat("n", 129) + `":"v"},"value":1}]}`, 400, CodeLabelTooLong, "push.max_label_name_bytes is 128"},
		{"long metric name", "a", `{"` + strings.Repeat("m", 129) + `":1}`, 400, CodeLabelTooLong, "push.max_label_name_bytes is 128"},
		{"four series at once", "a", `{"a":1,"b":2,"c":3,"d":4}`, 413, CodeTooManySeries, "push.max_series_per_topic is 3"},
		{"three series", "a", `{"a":1,"b":2,"c":3}`, 200, "", ""},
		{"the same three again", "a", `{"a":5,"b":6,"c":7}`, 200, "", ""},
		{"a fourth", "a", `{"d":1}`, 413, CodeTooManySeries, "push.max_series_per_topic is 3"},
		{"second topic", "b", `{"a":1}`, 200, "", ""},
		{"third topic", "c", `{"a":1}`, 413, CodeTooManyTopics, "push.max_topics is 2"},
		{"32 labels of 1 KiB", "b", labels(32, 1024), 200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(app.calls)
			status, body, _ := post(t, url+tc.topic, "Bearer "+token, tc.body)
			if status != tc.status || !strings.Contains(body, tc.code) || !strings.Contains(body, tc.cap) {
				t.Fatalf("%d %.300s, want %d %s naming %q", status, body, tc.status, tc.code, tc.cap)
			}
			if stored := len(app.calls) - before; (status == 200) != (stored == 1) {
				t.Fatalf("stored %d frames for a %d", stored, status)
			}
		})
	}
}

// With a login on every route, the Authorization header holds the basic
// credentials; the push token then comes in X-Push-Token.
func TestPushTokenHeader(t *testing.T) {
	srv := newServer(t, &fakeAppender{}, config.Push{Token: token})
	url := srv.URL + "/api/v1/push/jobs"
	if status, body, _ := post(t, url, "Basic dXNlcjpwYXNz", `{"a":1}`, TokenHeader, token); status != 200 {
		t.Fatalf("X-Push-Token: %d %s", status, body)
	}
	if status, _, _ := post(t, url, "Basic dXNlcjpwYXNz", `{"a":1}`, TokenHeader, "wrong"); status != 401 {
		t.Fatalf("wrong X-Push-Token: %d", status)
	}
}

// Wrong tokens are counted and logged (at most one line per ten seconds,
// with the count), and a client that keeps trying is made to wait, even
// with the right token, while another client is not.
func TestPushTokenBackoff(t *testing.T) {
	var logs syncBuf
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	reg := prometheus.NewRegistry()
	e := echo.New()
	e.HTTPErrorHandler = newServerErrorHandler()
	e.POST("/api/v1/push/:topic", HandlerWith(&fakeAppender{}, config.Push{Token: token},
		Options{Registerer: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: clock}))
	send := func(tok, from string) (int, http.Header) {
		req, _ := http.NewRequest("POST", "/api/v1/push/jobs", strings.NewReader(`{"a":1}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		req.RemoteAddr = from
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec.Code, rec.Header()
	}
	const attacker, other = "192.0.2.66:1000", "198.51.100.7:2000"
	for i := range freeFailures {
		if code, _ := send(fmt.Sprintf("guess-%d", i), attacker); code != 401 {
			t.Fatalf("guess %d: %d", i, code)
		}
	}
	if code, _ := send("guess-x", attacker); code != 401 {
		t.Fatalf("sixth guess: %d, want 401 (then the back-off starts)", code)
	}
	code, hdr := send(token, attacker)
	if code != 429 || hdr.Get("Retry-After") != "1" {
		t.Fatalf("during the back-off: %d Retry-After %q, want 429 and 1", code, hdr.Get("Retry-After"))
	}
	if code, _ := send(token, other); code != 200 {
		t.Fatalf("another client: %d", code)
	}
	// Each further failure doubles the wait, up to five minutes.
	for i := range 20 {
		advance(maxBackoff)
		if code, _ := send(fmt.Sprintf("again-%d", i), attacker); code != 401 {
			t.Fatalf("after the wait: %d", code)
		}
	}
	if _, hdr := send(token, attacker); hdr.Get("Retry-After") != "300" {
		t.Fatalf("Retry-After %q after many failures, want 300", hdr.Get("Retry-After"))
	}
	advance(maxBackoff)
	if code, _ := send(token, attacker); code != 200 {
		t.Fatalf("the right token after the wait: %d", code)
	}
	if n := unauthorizedCount(t, reg); n != 26 {
		t.Errorf("unauthorized counted %v times, want 26", n)
	}
	lines := strings.Count(logs.String(), "push: wrong or missing token")
	if lines < 2 || lines > 22 || !strings.Contains(logs.String(), "client=192.0.2.66") {
		t.Errorf("%d log lines:\n%s", lines, logs.String())
	}
	if strings.Contains(logs.String(), "guess-") {
		t.Error("a presented token reached the log")
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func unauthorizedCount(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "livedash_push_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" && l.GetValue() == CodeUnauthorized {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
