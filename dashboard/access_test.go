package dashboard_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"livedash/config"
	"livedash/dashboard"
	"livedash/dashboard/testcert"
)

// webConfig writes a web configuration file (with a fresh certificate
// beside it, which the file may name as cert.pem and key.pem) and loads it.
func webConfig(tb testing.TB, yaml string) (*dashboard.WebConfig, testcert.Files) {
	tb.Helper()
	dir := tb.TempDir()
	certs := testcert.Write(tb, dir)
	path := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		tb.Fatal(err)
	}
	wc, err := dashboard.LoadWebConfig(path)
	if err != nil {
		tb.Fatalf("LoadWebConfig: %v", err)
	}
	return wc, certs
}

func hash(tb testing.TB, password string, cost int) string {
	tb.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		tb.Fatal(err)
	}
	return string(h)
}

// tlsClient speaks HTTP/1.1 only or HTTP/2 only over TLS, trusting pool.
func tlsClient(certs testcert.Files, h2 bool) *http.Client {
	var p http.Protocols
	if h2 {
		p.SetHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	return &http.Client{Transport: &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{RootCAs: certs.Pool}}}
}

// A request for every route, and what a logged-in client gets. Every route
// the server has must be here: a route added without a row fails the test,
// so that nobody adds one without deciding how it is reached.
type routeCase struct {
	method, target string
	body           string
	hdr            []string
	good           int // status with good credentials; 0 = anything but 401
}

var routeCases = map[string]routeCase{
	"GET /":                    {method: "GET", target: "/", good: 200},
	"GET /*":                   {method: "GET", target: "/app.js", good: 200},
	"GET /healthz":             {method: "GET", target: "/healthz", good: 200},
	"GET /readyz":              {method: "GET", target: "/readyz", good: 200},
	"GET /metrics":             {method: "GET", target: "/metrics", good: 200},
	"GET /api/v1/status":       {method: "GET", target: "/api/v1/status", good: 200},
	"GET /api/v1/latest":       {method: "GET", target: "/api/v1/latest", good: 200},
	"GET /api/v1/series":       {method: "GET", target: "/api/v1/series", good: 200},
	"GET /api/v1/query":        {method: "GET", target: "/api/v1/query", good: 200},
	"GET /api/v1/openapi.json": {method: "GET", target: "/api/v1/openapi.json", good: 200},
	"GET /api/v1/dashboard":    {method: "GET", target: "/api/v1/dashboard", good: 200},
	"GET /licenses.txt":        {method: "GET", target: "/licenses.txt", good: 200},
	"GET /api/v1/frames":       {method: "GET", target: "/api/v1/frames?wait=300ms", good: 200}, // a long poll that parks, then times out
	"GET /api/v1/stream":       {method: "GET", target: "/api/v1/stream", good: 200},
	"GET /api/v1/ws":           {method: "GET", target: "/api/v1/ws", good: 0}, // no upgrade asked: the transport's own refusal
	"POST /api/v1/push/:topic": {method: "POST", target: "/api/v1/push/jobs", body: `{"a":1}`, hdr: []string{"Content-Type", "application/json", "X-Push-Token", pushToken}, good: 200},
}

// With users configured, every route needs credentials but /healthz and
// /readyz: no credentials, a wrong password and an unknown user get 401
// with the realm and the JSON error body, good credentials pass — over
// HTTP/1.1 and HTTP/2 with TLS, the stream and a parked long poll
// included. Push wants its token on top.
func TestLoginOnEveryRoute(t *testing.T) {
	web, certs := webConfig(t, fmt.Sprintf(`
tls_server_config:
  cert_file: cert.pem
  key_file: key.pem
basic_auth_users:
  alice: %s
`, hash(t, "wonderland", bcrypt.MinCost)))
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		wireAll(t, c, d)
		d.Web = web
	})
	appendFrame(t, h, "seed", 1)
	routes := map[string]bool{}
	for _, r := range h.srv.Echo().Routes() {
		name := r.Method + " " + r.Path
		if _, ok := routeCases[name]; !ok {
			t.Errorf("route %s has no row in routeCases", name)
		}
		routes[name] = true
	}
	creds := []struct {
		name       string
		user, pass string
	}{{"none", "", ""}, {"wrong password", "alice", "looking-glass"}, {"unknown user", "mallory", "wonderland"}, {"good", "alice", "wonderland"}}
	for _, h2 := range []bool{false, true} {
		client := tlsClient(certs, h2)
		proto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]
		for name, rc := range routeCases {
			if !routes[name] {
				continue // a route of a part this build does not have
			}
			for _, cr := range creds {
				t.Run(fmt.Sprintf("%s/%s/%s", proto, name, cr.name), func(t *testing.T) {
					var body io.Reader
					if rc.body != "" {
						body = strings.NewReader(rc.body)
					}
					req, _ := http.NewRequest(rc.method, h.url+rc.target, body)
					for i := 0; i+1 < len(rc.hdr); i += 2 {
						req.Header.Set(rc.hdr[i], rc.hdr[i+1])
					}
					if cr.user != "" {
						req.SetBasicAuth(cr.user, cr.pass)
					}
					resp, err := client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					if resp.Proto != proto {
						t.Errorf("answered over %s", resp.Proto)
					}
					public := rc.target == "/healthz" || rc.target == "/readyz"
					if rc.target == "/api/v1/stream" && resp.StatusCode == 200 {
						// Read the stream's first line, then hang up.
						if l, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !sseLine.MatchString(l) {
							t.Errorf("stream's first line %q %v", l, err)
						}
						return
					}
					b, _ := io.ReadAll(resp.Body)
					switch {
					case cr.name != "good" && !public:
						if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Basic realm="livedash"` ||
							!strings.Contains(string(b), `{"error":{"code":"unauthorized"`) {
							t.Errorf("%s %q %q, want 401 with the realm and the JSON error", resp.Status, resp.Header.Get("WWW-Authenticate"), b)
						}
					case rc.good == 0:
						if resp.StatusCode == 401 {
							t.Errorf("good credentials: %s %s", resp.Status, b)
						}
					case resp.StatusCode != rc.good:
						t.Errorf("%s %.200s, want %d", resp.Status, b, rc.good)
					}
				})
			}
		}
		client.CloseIdleConnections()
	}
	// Push without its token is refused even when logged in.
	req, _ := http.NewRequest("POST", h.url+"/api/v1/push/jobs", strings.NewReader(`{"a":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("alice", "wonderland")
	resp, err := tlsClient(certs, true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("push logged in without its token: %s", resp.Status)
	}
}

// 300 logins at once, half of them bad, are all answered right, and the
// bcrypt work is once per distinct credential, not once per request (a
// comparison costs tens of milliseconds at the default cost: 300 of them
// would take seconds of both cores).
func TestConcurrentLoginsCached(t *testing.T) {
	web, certs := webConfig(t, fmt.Sprintf(`
tls_server_config:
  cert_file: cert.pem
  key_file: key.pem
basic_auth_users:
  alice: %s
  bob: %s
`, hash(t, "wonderland", bcrypt.DefaultCost), hash(t, "builder", bcrypt.DefaultCost)))
	h := serve(t, func(c *config.Config, d *dashboard.Deps) { d.Web = web })
	// Ten client addresses, each one HTTP/2 connection carrying 30 logins.
	clients := make([]*http.Client, 10)
	for i := range clients {
		var p http.Protocols
		p.SetHTTP2(true)
		tr := &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{RootCAs: certs.Pool},
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(i+1))}}).DialContext}
		defer tr.CloseIdleConnections()
		clients[i] = &http.Client{Transport: tr}
	}
	type cred struct{ user, pass string }
	good := []cred{{"alice", "wonderland"}, {"bob", "builder"}}
	bad := []cred{{"alice", "nope"}, {"bob", "nope"}, {"eve", "wonderland"}}
	var wrong atomic.Int32
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 300 {
		c, want := good[i%len(good)], 200
		if i%2 == 1 {
			c, want = bad[i%len(bad)], 401
		}
		wg.Go(func() {
			// A connection the loaded machine lost (a reset, an EOF before
			// the TLS handshake finished) is not what is under test: the
			// request is tried again, up to three times, and every answer
			// is checked.
			var resp *http.Response
			var err error
			for attempt := range 3 {
				req, _ := http.NewRequest("GET", h.url+"/api/v1/status", nil)
				req.SetBasicAuth(c.user, c.pass)
				if resp, err = clients[i%len(clients)].Do(req); err == nil {
					break
				}
				t.Logf("login %d, attempt %d: %v", i, attempt+1, err)
			}
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				wrong.Add(1)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if n := wrong.Load(); n > 0 {
		t.Fatalf("%d of 300 logins answered wrong", n)
	}
	compared := metricValue(t, h, "livedash_http_auth_bcrypt_comparisons_total ")
	t.Logf("300 concurrent logins (150 bad) in %v; %v bcrypt comparisons", took, compared)
	if compared > float64(len(good)+len(bad)) {
		t.Errorf("%v bcrypt comparisons for %d distinct credentials", compared, len(good)+len(bad))
	}
}

// A bad web configuration file stops start-up with an error naming the
// file and the problem; nothing falls back to plain HTTP.
func TestBadWebConfig(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"missing certificate", "tls_server_config:\n  cert_file: nope.pem\n  key_file: key.pem\n", "nope.pem"},
		{"key without certificate", "tls_server_config:\n  key_file: key.pem\n", "missing one of cert or cert_file"},
		{"certificate without key", "tls_server_config:\n  cert_file: cert.pem\n", "missing one of key or key_file"},
		{"unknown key", "tls_server_confg:\n  cert_file: cert.pem\n", "field tls_server_confg not found"},
		{"unknown nested key", "http_server_config:\n  http3: true\n", "field http3 not found"},
		{"empty hash", "basic_auth_users:\n  alice: ''\n", `user "alice": the password must be a bcrypt hash`},
		{"plain password", "basic_auth_users:\n  alice: wonderland\n", `user "alice"`},
		{"bad TLS version", "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS14\n", "unknown TLS version: TLS14"},
		{"min above max", "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS13\n  max_version: TLS12\n", "min_version is above max_version"},
		{"bad client auth", "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: Sometimes\n", "invalid ClientAuth"},
		{"client CA without policy", "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_ca_file: cert.pem\n", "without a Client Auth Policy"},
		{"header not allowed", "http_server_config:\n  headers:\n    Server: livedash\n", `"Server" can not be configured`},
		{"not YAML", "tls_server_config: [\n", "yaml"},
		{"certificate is no certificate", "tls_server_config:\n  cert_file: web.yml\n  key_file: key.pem\n", "X509KeyPair"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			testcert.Write(t, dir)
			path := filepath.Join(dir, "web.yml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			wc, err := dashboard.LoadWebConfig(path)
			if err == nil {
				t.Fatalf("loaded: %+v", wc)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q, want it to name %s and %q", err, path, tc.want)
			}
		})
	}
	if _, err := dashboard.LoadWebConfig(filepath.Join(t.TempDir(), "absent.yml")); err == nil || !strings.Contains(err.Error(), "absent.yml") {
		t.Errorf("absent file: %v", err)
	}
}

// With TLS, one HTTP/2 connection carries the stream and the API: a client
// negotiates h2, receives stream frames and two API answers while the
// stream stays open, and dials once.
func TestHTTP2OneConnection(t *testing.T) {
	web, certs := webConfig(t, fmt.Sprintf(`
tls_server_config:
  cert_file: cert.pem
  key_file: key.pem
  min_version: TLS13
http_server_config:
  headers:
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  alice: %s
`, hash(t, "wonderland", bcrypt.MinCost)))
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		wireAll(t, c, d)
		d.Web = web
	})
	var dials atomic.Int32
	var alpn sync.Map
	tr := &http.Transport{
		ForceAttemptHTTP2: true,
		TLSClientConfig:   &tls.Config{RootCAs: certs.Pool},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			c, err := (&tls.Dialer{Config: &tls.Config{RootCAs: certs.Pool, NextProtos: []string{"h2", "http/1.1"}}}).DialContext(ctx, network, addr)
			if err == nil {
				alpn.Store(c.(*tls.Conn).ConnectionState().NegotiatedProtocol, true)
			}
			return c, err
		},
	}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	do := func(path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", h.url+path, nil)
		req.SetBasicAuth("alice", "wonderland")
		var reused []bool
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) },
		}))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Proto != "HTTP/2.0" || resp.StatusCode != 200 {
			t.Fatalf("%s: %s %s", path, resp.Proto, resp.Status)
		}
		if resp.Header.Get("Strict-Transport-Security") != "max-age=31536000" {
			t.Errorf("%s: the web configuration's header is missing: %v", path, resp.Header)
		}
		return resp
	}
	stream := do("/api/v1/stream?topics=t")
	defer stream.Body.Close()
	events := make(chan string, 64)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
			events <- sc.Text()
		}
	}()
	for _, v := range []float64{1, 2} {
		appendFrame(t, h, "t", v)
	}
	frames := 0
	deadline := time.After(5 * time.Second)
	for frames < 2 {
		select {
		case l := <-events:
			if l == "event: frame" {
				frames++
			}
		case <-deadline:
			t.Fatalf("%d stream frames in 5s", frames)
		}
	}
	for _, path := range []string{"/api/v1/latest", "/api/v1/series"} {
		resp := do(path)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"t"`) {
			t.Errorf("%s: %s", path, b)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d connections for the stream and two API calls, want 1", n)
	}
	if _, ok := alpn.Load("h2"); !ok {
		t.Error("h2 was not negotiated")
	}
}

// DNS rebinding: a page on the attacker's name, resolved to this server's
// address, sends requests whose Host is the attacker's name. They are
// refused (421) before any handler runs; the names of the server are served.
func TestForeignHostRefused(t *testing.T) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) { wireAll(t, c, d) })
	appendFrame(t, h, "cpu", 1)
	addr := strings.TrimPrefix(h.url, "http://")
	for host, want := range map[string]int{
		"rebind.attacker.example:7070": 421,
		"rebind.attacker.example":      421,
		"localhost.attacker.example":   421,
		"10.1.2.3":                     421,
		"localhost:7070":               200,
		"LOCALHOST.":                   200,
		"127.0.0.1:1":                  200,
		"[::1]:7070":                   200,
		addr:                           200,
	} {
		status, body := withHost(t, addr, "/api/v1/latest", host)
		if status != want {
			t.Errorf("Host %s: %d, want %d", host, status, want)
		}
		if want == 421 && (strings.Contains(body, "cpu") || !strings.Contains(body, `"code":"unknown_host"`)) {
			t.Errorf("Host %s: body %s", host, body)
		}
	}

	// Configured names and subdomains.
	h = serve(t, func(c *config.Config, d *dashboard.Deps) {
		c.HTTP.AllowedHosts = []string{"dash.example.com", ".corp.example"}
	})
	addr = strings.TrimPrefix(h.url, "http://")
	for host, want := range map[string]int{"dash.example.com:443": 200, "a.corp.example": 200, "localhost": 421, "example.com": 421, addr: 421} {
		if status, _ := withHost(t, addr, "/healthz", host); status != want {
			t.Errorf("allowed_hosts: Host %s: %d, want %d", host, status, want)
		}
	}
	// Listening on every interface: any IP address is ours, names are not.
	h = serve(t, func(c *config.Config, d *dashboard.Deps) { c.Listen = "0.0.0.0:7070" })
	addr = strings.TrimPrefix(h.url, "http://")
	for host, want := range map[string]int{"192.0.2.10:7070": 200, "[2001:db8::1]": 200, "localhost": 200, "dash.example.com": 421} {
		if status, _ := withHost(t, addr, "/healthz", host); status != want {
			t.Errorf("listen 0.0.0.0: Host %s: %d, want %d", host, status, want)
		}
	}
}

// withHost sends one raw request naming host in its Host header.
func withHost(tb testing.TB, addr, path, host string) (int, string) {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		tb.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// dialFrom connects to addr from the loopback address src.
func dialFrom(tb testing.TB, src, addr string) net.Conn {
	tb.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 3 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closes c without answering a
// health check within a second.
func closedByServer(c net.Conn) bool {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
	b := make([]byte, 1)
	_, err := c.Read(b)
	return err == io.EOF || (err != nil && !isTimeout(err))
}

// One address holding its share of connections — silent ones, keep-alive
// ones and parked long polls — cannot lock another address out: the
// server's cap (max_conns) keeps slots for others because each address is
// capped at accept (max_conns_per_client).
func TestOneAddressCannotLockOutAnother(t *testing.T) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		c.HTTP.MaxConns = 20
		c.HTTP.MaxConnsPerClient = 9
		c.Stream.MaxStreams = 0
		wireAll(t, c, d)
	})
	addr := strings.TrimPrefix(h.url, "http://")
	for i := range 3 { // silent
		_ = i
		dialFrom(t, "127.0.0.1", addr)
	}
	for range 3 { // keep-alive, after one answer
		c := dialFrom(t, "127.0.0.1", addr)
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // parked long polls
		c := dialFrom(t, "127.0.0.1", addr)
		_, _ = io.WriteString(c, "GET /api/v1/frames?wait=30s HTTP/1.1\r\nHost: localhost\r\n\r\n")
	}
	waitMetric(t, h, "livedash_api_long_polls ", 3)
	// The tenth connection of 127.0.0.1 is closed at accept and counted.
	if !closedByServer(dialFrom(t, "127.0.0.1", addr)) {
		t.Error("a tenth connection from 127.0.0.1 was served")
	}
	waitMetric(t, h, "livedash_http_connections_rejected_total ", 1)
	// Another address is served at once.
	c := dialFrom(t, "127.0.0.2", addr)
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("another address: %v %v", resp, err)
	}
}

// Long polls parked by one client are capped (429 with Retry-After); over
// HTTP/2 that is the only bound, one connection carrying many requests.
// Another client parks its own.
func TestParkedPollsPerClient(t *testing.T) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		c.HTTP.MaxPollsPerClient = 2
		d.UnencryptedHTTP2 = true
		wireAll(t, c, d)
	})
	client := clientFor("h2c")
	defer client.CloseIdleConnections()
	results := make(chan int, 3)
	for range 2 {
		go func() {
			resp, err := client.Get(h.url + "/api/v1/frames?wait=20s")
			if err != nil {
				results <- 0
				return
			}
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	waitMetric(t, h, "livedash_api_long_polls ", 2)
	resp, err := client.Get(h.url + "/api/v1/frames?wait=20s")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "http.max_polls_per_client") {
		t.Fatalf("third parked poll: %s %q %s", resp.Status, resp.Header.Get("Retry-After"), b)
	}
	// Another client address parks.
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}
	defer tr.CloseIdleConnections()
	go func() {
		resp, err := (&http.Client{Transport: tr}).Get(h.url + "/api/v1/frames?wait=20s")
		if err == nil {
			resp.Body.Close()
			results <- resp.StatusCode
		}
	}()
	waitMetric(t, h, "livedash_api_long_polls ", 3)
	appendFrame(t, h, "x", 1) // releases all three
	for range 3 {
		if s := <-results; s != 200 {
			t.Errorf("parked poll answered %d", s)
		}
	}
}

// The JSON API has a token bucket per client: over it, 429 with
// Retry-After; other clients, the stream and health checks are not
// affected. X-Forwarded-For decides the client only from a trusted proxy.
func TestAPIRatePerClient(t *testing.T) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		c.HTTP.APIRate, c.HTTP.APIBurst = 0.5, 3
		c.HTTP.TrustedProxies = []string{"127.0.0.1"}
		wireAll(t, c, d)
	})
	from := func(src string, xff ...string) int {
		t.Helper()
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("GET", h.url+"/api/v1/latest", nil)
		for _, x := range xff {
			req.Header.Add("X-Forwarded-For", x)
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") != "2" {
			t.Errorf("Retry-After %q, want 2 (one token at 0.5/s)", resp.Header.Get("Retry-After"))
		}
		return resp.StatusCode
	}
	seq := func(n int, src string, xff ...string) []int {
		var out []int
		for range n {
			out = append(out, from(src, xff...))
		}
		return out
	}
	// An untrusted peer is itself, whatever it claims.
	if got := seq(4, "127.0.0.2", "203.0.113.1"); !slices.Equal(got, []int{200, 200, 200, 429}) {
		t.Errorf("untrusted peer: %v", got)
	}
	if got := seq(1, "127.0.0.2", "203.0.113.99"); got[0] != 429 {
		t.Errorf("untrusted peer with another claim: %v", got)
	}
	// Behind the trusted proxy, each forwarded client has its own bucket.
	if got := seq(4, "127.0.0.1", "203.0.113.1"); !slices.Equal(got, []int{200, 200, 200, 429}) {
		t.Errorf("forwarded client: %v", got)
	}
	if got := seq(1, "127.0.0.1", "6.6.6.6, 203.0.113.2"); got[0] != 200 {
		t.Errorf("another forwarded client: %v", got)
	}
	// The stream and health checks are not counted.
	for range 5 {
		if resp, _ := get(t, h.url+"/healthz"); resp.StatusCode != 200 {
			t.Fatalf("healthz: %d", resp.StatusCode)
		}
	}
	if v := metricValue(t, h, "livedash_http_rate_limited_total "); v != 3 {
		t.Errorf("rate_limited counted %v, want 3", v)
	}
}

// A push with 20,000 labels or a 900 KB label value is refused naming the
// cap, so the catalog stays small and fast to rebuild.
func TestOversizedPushRefused(t *testing.T) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) { wireAll(t, c, d) })
	push := func(body string) (int, string) {
		req, _ := http.NewRequest("POST", h.url+"/api/v1/push/jobs", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+pushToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var many strings.Builder
	for i := range 20_000 {
		if i > 0 {
			many.WriteByte(',')
		}
		fmt.Fprintf(&many, `"l%d":"v"`, i)
	}
	if s, b := push(`{"samples":[{"name":"x","labels":{` + many.String() + `},"value":1}]}`); s != 400 || !strings.Contains(b, "push.max_labels") {
		t.Errorf("20,000 labels: %d %.200s", s, b)
	}
	if s, b := push(`{"samples":[{"name":"x","labels":{"l":"` + strings.Repeat("v", 900_000) + `"},"value":1}]}`); s != 400 || !strings.Contains(b, "push.max_label_value_bytes") {
		t.Errorf("900 KB label value: %d %.200s", s, b)
	}
	if s, b := push(`{"samples":[{"name":"x","labels":{"l":"v"},"value":1}]}`); s != 200 {
		t.Fatalf("a small push: %d %s", s, b)
	}
	start := time.Now()
	resp, body := get(t, h.url+"/api/v1/series")
	took := time.Since(start)
	t.Logf("/api/v1/series after the refused pushes: %d bytes in %v", len(body), took)
	if resp.StatusCode != 200 || len(body) > 4096 || !strings.Contains(body, `"jobs"`) {
		t.Errorf("series: %d, %d bytes", resp.StatusCode, len(body))
	}
}
