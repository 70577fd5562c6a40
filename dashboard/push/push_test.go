package push

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"livedash/config"
	"livedash/dashboard/apierr"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type call struct {
	topic   string
	samples []Sample
}

// fakeAppender records every append.
type fakeAppender struct {
	mu    sync.Mutex
	calls []call
	err   error
}

func (f *fakeAppender) AppendPush(topic string, _ time.Time, samples []Sample) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	f.calls = append(f.calls, call{topic, samples})
	return fmt.Sprintf("00000000000000ab-%d", len(f.calls)), nil
}

const token = "s3cret-token"

// newServer serves the handler on a real listener with an error handler
// that renders *apierr.Error the way the livedash server does.
func newServer(t *testing.T, app Appender, cfg config.Push) *httptest.Server {
	t.Helper()
	e := echo.New()
	e.HTTPErrorHandler = newServerErrorHandler()
	e.POST("/api/v1/push/:topic", Handler(app, cfg, prometheus.NewRegistry()))
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

// newServerErrorHandler renders *apierr.Error the way the livedash server
// does.
func newServerErrorHandler() echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		var ae *apierr.Error
		if !errors.As(err, &ae) {
			ae = apierr.New(http.StatusInternalServerError, "internal_error", "internal error")
			var he *echo.HTTPError
			if errors.As(err, &he) {
				ae = apierr.New(he.Code, "http_error", "%v", he.Message)
			}
		}
		_ = c.JSON(ae.Status, apierr.BodyOf(ae))
	}
}

func TestPush(t *testing.T) {
	cfg := config.Push{Token: token, MaxBodyBytes: 4096, MaxSamples: 5}
	big := `{"a": 1, "pad": "` + strings.Repeat("x", 5000) + `"}`
	for _, tc := range []struct {
		name, topic, ctype, auth, body string
		status                         int
		code                           string
		want                           []Sample // stored samples (sorted by name for the object form)
	}{
		{name: "json object", body: `{"queue_depth": 12, "workers": 4.5}`, status: 200,
			want: []Sample{{Name: "queue_depth", Value: 12}, {Name: "workers", Value: 4.5}}},
		{name: "json samples with hostile label values", body: `{"samples":[{"name":"x","labels":{"path":"<img src=x onerror=alert(1)>","nl":"a\r\n\ndata: x","ls":"\u2028\u202e"},"value":1}]}`,
			status: 200, want: []Sample{{Name: "x", Labels: map[string]string{"path": "<img src=x onerror=alert(1)>", "nl": "a\r\n\ndata: x", "ls": "\u2028\u202e"}, Value: 1}}},
		{name: "text format", ctype: "text/plain; version=0.0.4; charset=utf-8",
			body: "# TYPE jobs counter\njobs_total{queue=\"a\\\"b\"} 3\nup 1 1700000000000\n", status: 200,
			want: []Sample{{Name: "jobs_total", Labels: map[string]string{"queue": `a"b`}, Value: 3}, {Name: "up", Value: 1}}},
		{name: "text histogram flattened", ctype: "text/plain",
			body: "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n", status: 200,
			want: []Sample{{Name: "h_bucket", Labels: map[string]string{"le": "1"}, Value: 1}, {Name: "h_bucket", Labels: map[string]string{"le": "+Inf"}, Value: 2}, {Name: "h_sum", Value: 3}, {Name: "h_count", Value: 2}}},

		{name: "no token", auth: "-", body: `{"a":1}`, status: 401, code: CodeUnauthorized},
		{name: "wrong token", auth: "Bearer nope", body: `{"a":1}`, status: 401, code: CodeUnauthorized},
		{name: "basic auth", auth: "Basic " + token, body: `{"a":1}`, status: 401, code: CodeUnauthorized},
		{name: "bad topic", topic: "Bad-Topic", body: `{"a":1}`, status: 400, code: CodeInvalidTopic},
		{name: "long topic", topic: strings.Repeat("a", 65), body: `{"a":1}`, status: 400, code: CodeInvalidTopic},
		{name: "reserved topic", topic: "cpu", body: `{"a":1}`, status: 400, code: CodeReservedTopic},
		{name: "wrong content type", ctype: "application/x-www-form-urlencoded", body: `a=1`, status: 415, code: CodeUnsupportedMedia},
		{name: "protobuf", ctype: "application/vnd.google.protobuf", body: `x`, status: 415, code: CodeUnsupportedMedia},
		{name: "text other version", ctype: "text/plain; version=1.0.0", body: "a 1\n", status: 415, code: CodeUnsupportedMedia},
		{name: "no content type", ctype: "-", body: `{"a":1}`, status: 415, code: CodeUnsupportedMedia},
		{name: "huge body", body: big, status: 413, code: CodeBodyTooLarge},
		{name: "too many samples", body: `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}`, status: 413, code: CodeTooManySamples},
		{name: "text NaN", ctype: "text/plain", body: "a 1\nb NaN\n", status: 400, code: CodeInvalidValue},
		{name: "text +Inf", ctype: "text/plain", body: "a +Inf\n", status: 400, code: CodeInvalidValue},
		{name: "json out of range", body: `{"a": 1e999}`, status: 400, code: CodeInvalidValue},
		{name: "json string value", body: `{"a": "1"}`, status: 400, code: CodeInvalidValue},
		{name: "json NaN literal", body: `{"a": NaN}`, status: 400, code: CodeInvalidBody},
		{name: "invalid metric name", body: `{"a": 1, "b-c": 2}`, status: 400, code: CodeInvalidName},
		{name: "injection in name", body: `{"samples":[{"name":"<img src=x>","value":1}]}`, status: 400, code: CodeInvalidName},
		{name: "invalid label name", body: `{"samples":[{"name":"a","labels":{"1x":"v"},"value":1}]}`, status: 400, code: CodeInvalidName},
		{name: "reserved label name", body: `{"samples":[{"name":"a","labels":{"__name__":"v"},"value":1}]}`, status: 400, code: CodeInvalidName},
		{name: "invalid utf8", body: "{\"samples\":[{\"name\":\"a\",\"labels\":{\"k\":\"\xff\xfe\"},\"value\":1}]}", status: 400, code: CodeInvalidBody},
		{name: "missing value", body: `{"samples":[{"name":"a"}]}`, status: 400, code: CodeInvalidBody},
		{name: "unknown field", body: `{"samples":[{"name":"a","value":1,"ts":5}]}`, status: 400, code: CodeInvalidBody},
		{name: "duplicate series", body: `{"samples":[{"name":"a","value":1},{"name":"a","value":2}]}`, status: 400, code: CodeDuplicateSeries},
		{name: "good then bad: nothing stored", body: `{"samples":[{"name":"a","value":1},{"name":"b c","value":2}]}`, status: 400, code: CodeInvalidName},
		{name: "empty object", body: `{}`, status: 400, code: CodeInvalidBody},
		{name: "array", body: `[1,2]`, status: 400, code: CodeInvalidBody},
		{name: "malformed text", ctype: "text/plain", body: "a{b=\"c\" 1\n", status: 400, code: CodeInvalidBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &fakeAppender{}
			srv := newServer(t, app, cfg)
			topic := tc.topic
			if topic == "" {
				topic = "jobs"
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/push/"+topic, strings.NewReader(tc.body))
			switch tc.ctype {
			case "":
				req.Header.Set("Content-Type", "application/json")
			case "-":
			default:
				req.Header.Set("Content-Type", tc.ctype)
			}
			switch tc.auth {
			case "":
				req.Header.Set("Authorization", "Bearer "+token)
			case "-":
			default:
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != 200 {
				var eb apierr.Body
				if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code != tc.code || eb.Error.Message == "" {
					t.Errorf("error body %s, want code %s", body, tc.code)
				}
				if len(app.calls) != 0 {
					t.Errorf("appended on error: %+v", app.calls)
				}
				return
			}
			if len(app.calls) != 1 || app.calls[0].topic != topic {
				t.Fatalf("calls = %+v, want one on %s", app.calls, topic)
			}
			var ans struct {
				ID, Topic string
				Samples   int
			}
			if err := json.Unmarshal(body, &ans); err != nil || ans.ID != "00000000000000ab-1" || ans.Topic != topic || ans.Samples != len(tc.want) {
				t.Errorf("answer %s: want the new frame's ID, the topic and %d samples", body, len(tc.want))
			}
			got := app.calls[0].samples
			if len(got) != len(tc.want) {
				t.Fatalf("stored %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i].Name != tc.want[i].Name || got[i].Value != tc.want[i].Value || !sameLabels(got[i].Labels, tc.want[i].Labels) {
					t.Errorf("sample %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestPushDisabledAndStoreFailure(t *testing.T) {
	post := func(srv *httptest.Server) (int, apierr.Body) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/push/jobs", strings.NewReader(`{"a":1}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b apierr.Body
		_ = json.NewDecoder(resp.Body).Decode(&b)
		return resp.StatusCode, b
	}
	if st, b := post(newServer(t, &fakeAppender{}, config.Push{})); st != 404 || b.Error.Code != CodeDisabled {
		t.Errorf("disabled: %d %+v", st, b)
	}
	failing := &fakeAppender{err: errors.New("disk full: /var/lib/x")}
	st, b := post(newServer(t, failing, config.Push{Token: token}))
	if st != 503 || b.Error.Code != CodeStoreFailed || strings.Contains(b.Error.Message, "disk full") {
		t.Errorf("store failure: %d %+v (Go error text must not leak)", st, b)
	}
}
