package dashboard_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"livedash/config"
	"livedash/dashboard"
)

// Every route answers a method it does not take with 405, the JSON error
// shape and an Allow header — the push route's GET included, which the
// page's file server used to answer with 404 "no such file" — and an unknown
// API path is a 404 that points at the OpenAPI document.
func TestWrongMethodIs405Everywhere(t *testing.T) {
	h := serve(t, func(_ *config.Config, d *dashboard.Deps) {
		d.Push = func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }
		d.Licenses = []byte("licenses")
	})
	for _, tc := range []struct {
		method, path, allow string
	}{
		{"GET", "/api/v1/push/app", "POST"},
		{"PUT", "/api/v1/push/app", "POST"},
		{"POST", "/api/v1/status", "GET"},
		{"DELETE", "/api/v1/status", "GET"},
		{"POST", "/healthz", "GET"},
		{"POST", "/readyz", "GET"},
		{"POST", "/metrics", "GET"},
		{"POST", "/licenses.txt", "GET"},
		{"POST", "/", "GET"},
		{"PUT", "/index.html", "GET"},
	} {
		req, _ := http.NewRequest(tc.method, h.url+tc.path, strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct{ Code, Message string }
		}
		derr := json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || derr != nil || e.Error.Code != "method_not_allowed" ||
			!strings.Contains(resp.Header.Get("Allow"), tc.allow) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d Allow %q %+v (%v)", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), e, derr)
		}
	}
	for _, p := range []string{"/api/v1/nosuch", "/api/v2/latest", "/api/v1/push/app/extra"} {
		resp, body := get(t, h.url+p)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `"not_found"`) || !strings.Contains(body, "openapi.json") {
			t.Errorf("GET %s: %d %s", p, resp.StatusCode, body)
		}
	}
	// The page's files are still served, and an unknown one is a 404.
	if resp, body := get(t, h.url+"/app.js"); resp.StatusCode != 200 || body != "export {}" {
		t.Errorf("GET /app.js: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, h.url+"/nope.js"); resp.StatusCode != 404 {
		t.Errorf("GET /nope.js: %d", resp.StatusCode)
	}
}

// /api/v1/status names the host and the build, and says whether the page is
// complete; /readyz stays ready without the page (the API works) but says
// so; /licenses.txt serves the notices as text.
func TestStatusHostBuildAndPage(t *testing.T) {
	h := serve(t, func(_ *config.Config, d *dashboard.Deps) {
		d.Host, d.Commit, d.BuildDate = "box-1", "0123456789abcdef0123456789abcdef01234567", "2026-01-02T03:04:05Z"
		d.Licenses = []byte("livedash: Apache-2.0\nuPlot: MIT\n")
	})
	var st struct {
		Version, Commit, Host, Page string
		BuildDate                   string `json:"build_date"`
		PageProblem                 string `json:"page_problem"`
	}
	resp, body := get(t, h.url+"/api/v1/status")
	if err := json.Unmarshal([]byte(body), &st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status: %d %s", resp.StatusCode, body)
	}
	if st.Host != "box-1" || st.Commit != "0123456789abcdef0123456789abcdef01234567" || st.BuildDate != "2026-01-02T03:04:05Z" ||
		st.Version != "test" || st.Page != "complete" || st.PageProblem != "" {
		t.Fatalf("status %+v", st)
	}
	if resp, body := get(t, h.url+"/readyz"); resp.StatusCode != 200 || strings.Contains(body, "page") {
		t.Fatalf("readyz: %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, h.url+"/licenses.txt")
	if resp.StatusCode != 200 || body != "livedash: Apache-2.0\nuPlot: MIT\n" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("licenses.txt: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	h2 := serve(t, func(_ *config.Config, d *dashboard.Deps) {
		d.PageProblem = "built without uPlot: run go generate ./assets"
	})
	resp, body = get(t, h2.url+"/api/v1/status")
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Page != "incomplete" || !strings.Contains(st.PageProblem, "go generate") {
		t.Fatalf("status without the page: %s", body)
	}
	if resp, body := get(t, h2.url+"/readyz"); resp.StatusCode != 200 || !strings.Contains(body, `"page":"incomplete"`) {
		t.Fatalf("readyz without the page: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, h2.url+"/licenses.txt"); resp.StatusCode != 404 {
		t.Fatalf("licenses.txt without Licenses: %d", resp.StatusCode)
	}
}
