package dashboard_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"livedash/config"
	"livedash/dashboard"
	"livedash/dashboard/api"
	"livedash/dashboard/hub"
	"livedash/dashboard/push"
	"livedash/dashboard/sse"
	"livedash/dashboard/store/bolt"
	"livedash/dashboard/ws"
)

type nopAppender struct{}

func (nopAppender) AppendPush(string, time.Time, []push.Sample) (string, error) {
	return "0000000000000001-1", nil
}

// fullServer builds the server with every part wired, as cmd/livedash does.
func fullServer(t *testing.T) (*dashboard.Server, *api.API) {
	t.Helper()
	cfg := config.Default()
	st, err := bolt.Open(bolt.Options{Path: filepath.Join(t.TempDir(), "r.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	reg := prometheus.NewRegistry()
	a := api.New(st, cfg.API, api.Options{Registerer: reg})
	st.OnCommit(a.OnCommit)
	if err := a.Load(); err != nil {
		t.Fatal(err)
	}
	h := hub.New(st, cfg.Stream, hub.Options{})
	srv := dashboard.New(cfg, dashboard.Deps{
		Store:     st,
		Registry:  reg,
		Version:   "test",
		Stream:    sse.New(h, sse.Options{}),
		WebSocket: ws.New(h, ws.Options{}).Serve,
		API:       a.Routes(),
		Push:      push.Handler(nopAppender{}, cfg.Push, reg),
		Assets:    fstest.MapFS{"index.html": {Data: []byte("<!doctype html>")}},
		Licenses:  []byte("licenses"),
	})
	return srv, a
}

var echoParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

// openapiPath turns an Echo route path into the document's form:
// /push/:topic → /push/{topic}; the assets catch-all /* → /{path}.
func openapiPath(p string) string {
	p = echoParam.ReplaceAllString(p, "{$1}")
	if strings.HasSuffix(p, "/*") {
		p = strings.TrimSuffix(p, "*") + "{path}"
	}
	return p
}

// TestOpenAPIMatchesRoutes: the checked-in OpenAPI document lists exactly the
// server's routes — every route is documented, every documented operation
// is routed.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	srv, _ := fullServer(t)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			if m == "parameters" || m == "summary" || m == "description" {
				continue
			}
			documented[strings.ToUpper(m)+" "+p] = true
		}
	}
	routed := map[string]bool{}
	for _, r := range srv.Echo().Routes() {
		if r.Method == echo.RouteNotFound {
			continue
		}
		routed[r.Method+" "+openapiPath(r.Path)] = true
	}
	for k := range routed {
		if !documented[k] {
			t.Errorf("route %s is not in dashboard/api/openapi.json", k)
		}
	}
	for k := range documented {
		if !routed[k] {
			t.Errorf("openapi.json documents %s, which the server does not route", k)
		}
	}
	for _, must := range []string{"GET /api/v1/stream", "GET /api/v1/ws", "GET /api/v1/frames", "GET /api/v1/latest", "GET /api/v1/series",
		"GET /api/v1/query", "POST /api/v1/push/{topic}", "GET /api/v1/status", "GET /healthz", "GET /readyz", "GET /metrics", "GET /",
		"GET /api/v1/dashboard", "GET /licenses.txt"} {
		if !documented[must] {
			t.Errorf("%s is not documented", must)
		}
	}
}

// TestOpenAPIRefsResolve: every $ref in the document points at a component.
func TestOpenAPIRefsResolve(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				var cur any = doc
				for _, part := range strings.Split(strings.TrimPrefix(r, "#/"), "/") {
					m, _ := cur.(map[string]any)
					cur = m[part]
				}
				if cur == nil {
					t.Errorf("unresolved $ref %s", r)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			slices.Values(v)(func(x any) bool { walk(x); return true })
		}
	}
	walk(doc)
}

// TestOpenAPIServed: the full server serves the embedded document.
func TestOpenAPIServed(t *testing.T) {
	srv, a := fullServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Echo(), ReadHeaderTimeout: time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer func() { a.Close(); _ = hs.Close() }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, api.OpenAPI()) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/v1/openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
