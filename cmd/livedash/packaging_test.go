package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"debug/elf"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"livedash/dashboard/testcert"
)

// repoFile reads a file of the repository (tests run in cmd/livedash).
func repoFile(tb testing.TB, rel string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", rel))
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// The Dockerfile's binary, built here with its exact flags (docker itself
// is not available to tests), is static; the image runs as a non-root
// user, keeps the store on a volume and checks /readyz.
func TestDockerfileStaticNonRoot(t *testing.T) {
	df := repoFile(t, "Dockerfile")
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0) go build (.*) -o /out/livedash (\./cmd/livedash)$`).FindStringSubmatch(df)
	if m == nil {
		t.Fatal("the Dockerfile has no `RUN CGO_ENABLED=0 go build … -o /out/livedash ./cmd/livedash` line")
	}
	out := filepath.Join(t.TempDir(), "livedash")
	args := append([]string{"build"}, splitArgs(t, m[2])...)
	args = append(args, "-o", out, m[3])
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), m[1])
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: it is dynamically linked", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs %v", libs)
	}
	if b, err := exec.Command(out, "version").Output(); err != nil || !strings.HasPrefix(string(b), "livedash ") {
		t.Errorf("the built binary: %q %v", b, err)
	}

	user := regexp.MustCompile(`(?m)^USER (\S+)$`).FindAllStringSubmatch(df, -1)
	if len(user) == 0 {
		t.Fatal("the Dockerfile sets no USER")
	}
	u, _, _ := strings.Cut(user[len(user)-1][1], ":")
	if n, err := strconv.Atoi(u); u == "root" || (err == nil && n == 0) || err != nil {
		t.Errorf("the image runs as %q: want a numeric non-root uid (scratch has no /etc/passwd)", user[len(user)-1][1])
	}
	for _, want := range []string{"\nFROM scratch\n", "\nVOLUME /var/lib/livedash\n", "HEALTHCHECK", `"healthcheck", "--url", "http://127.0.0.1:7070/readyz"`, "--store\", \"/var/lib/livedash/livedash.db\""} {
		if !strings.Contains(df, want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
}

// splitArgs splits a shell word list with double- or single-quoted words
// (no escapes), as the Dockerfile's build line uses them.
func splitArgs(tb testing.TB, s string) []string {
	tb.Helper()
	var out []string
	for _, m := range regexp.MustCompile(`(?:[^\s"']+|"[^"]*"|'[^']*')+`).FindAllString(s, -1) {
		out = append(out, strings.NewReplacer(`"`, "", "'", "").Replace(m))
	}
	return out
}

// The healthcheck command the image runs: 0 when ready, an error when not.
func TestHealthcheckCommand(t *testing.T) {
	ts := startServer(t)
	var out strings.Builder
	if err := run(context.Background(), []string{"healthcheck", "--url", ts.URL + "/readyz"}, &out, io.Discard); err != nil || out.String() != "ready\n" {
		t.Fatalf("healthcheck: %v %q", err, out.String())
	}
	if err := run(context.Background(), []string{"healthcheck", "--url", ts.URL + "/nope", "--timeout", "2s"}, io.Discard, io.Discard); err == nil {
		t.Fatal("healthcheck of a 404 succeeded")
	}
}

// The systemd unit has the sandbox it promises.
func TestSystemdUnit(t *testing.T) {
	unit := repoFile(t, "packaging/systemd/livedash.service")
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=livedash", "ProtectSystem=strict", "NoNewPrivileges=yes",
		"ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet=\n", "--store ${STATE_DIRECTORY}/livedash.db"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		dir := t.TempDir()
		exe := filepath.Join(dir, "livedash")
		if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "livedash.service")
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/livedash", exe)), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(sa, "verify", path).CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze verify: %v\n%s", err, b)
		}
	}
}

// nginxPath finds Debian's nginx; make test-deps installs it.
func nginxPath(tb testing.TB) string {
	tb.Helper()
	for _, p := range []string{"/usr/sbin/nginx", "nginx"} {
		if x, err := exec.LookPath(p); err == nil {
			return x
		}
	}
	tb.Fatal("nginx not found: install it with `apt-get install -y nginx` (make test-deps does this)")
	return ""
}

// freePort returns a loopback port nothing listens on (for nginx, which
// cannot be handed a socket).
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNginx runs Debian's nginx in the foreground with conf (a file for
// the http block, as packaging/nginx holds) included in a minimal main
// configuration, everything under dir; it waits until nginx accepts on
// conf's one listen address, which it returns, and stops nginx when the
// test ends (showing its error log if the test failed).
func startNginx(t *testing.T, dir, conf string) (front string) {
	t.Helper()
	nginx := nginxPath(t)
	m := regexp.MustCompile(`(?m)^\s*listen (127\.0\.0\.1:\d+)[ ;]`).FindAllStringSubmatch(conf, -1)
	if len(m) != 1 {
		t.Fatalf("nginx configuration: want one listen 127.0.0.1:port, got %q", m)
	}
	front = m[0][1]
	if err := os.WriteFile(filepath.Join(dir, "livedash.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/livedash.conf;
}
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error.log:\n%s", b)
		}
	})
	waitFor(t, "nginx listening", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", front)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return front
}

// substitute replaces each pair's first string, which conf (the repository
// file name) must hold exactly once, by its second: a packaging file run as
// written but for its ports and paths.
func substitute(tb testing.TB, name, conf string, pairs ...[2]string) string {
	tb.Helper()
	for _, r := range pairs {
		if strings.Count(conf, r[0]) != 1 {
			tb.Fatalf("%s should hold %q once", name, r[0])
		}
		conf = strings.Replace(conf, r[0], r[1], 1)
	}
	return conf
}

// The nginx configuration of packaging/, as written (only its ports,
// upstream address and certificate paths changed), in front of livedash
// trusting it: TLS and HTTP/2 at nginx, the stream unbuffered, and
// X-Forwarded-For from nginx deciding the client for the per-client stream
// limit — two users behind the proxy no longer count as one, and a client
// cannot pass for another by sending the header itself.
func TestNginxReverseProxy(t *testing.T) {
	dir := t.TempDir()
	certs := testcert.Write(t, dir, "dash.example.com")
	cfgPath := filepath.Join(dir, "livedash.yaml")
	if err := os.WriteFile(cfgPath, []byte(`
http:
  trusted_proxies: [127.0.0.1]
  allowed_hosts: [dash.example.com]
stream:
  max_streams_per_ip: 1
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, "--config", cfgPath)

	port := freePort(t)
	conf := substitute(t, "packaging/nginx/livedash.conf", repoFile(t, "packaging/nginx/livedash.conf"),
		[2]string{"listen 443 ssl http2;", fmt.Sprintf("listen 127.0.0.1:%d ssl http2;", port)},
		[2]string{"server 127.0.0.1:7070;", "server " + ts.Addr + ";"},
		[2]string{"/etc/ssl/livedash/fullchain.pem", certs.Cert},
		[2]string{"/etc/ssl/livedash/privkey.pem", certs.Key},
	)
	front := startNginx(t, dir, conf)

	// client returns an HTTP client speaking to nginx from the loopback
	// address src, as dash.example.com.
	client := func(src string) *http.Client {
		return &http.Client{Transport: &http.Transport{
			ForceAttemptHTTP2: true,
			TLSClientConfig:   &tls.Config{RootCAs: certs.Pool, ServerName: "dash.example.com"},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext(ctx, network, front)
			},
		}}
	}
	// stream opens a stream from src and says whether it was admitted
	// (hello) or turned away (over capacity); admitted streams stay open
	// until the test ends, and must show a frame within 5 s: nginx does not
	// buffer them.
	stream := func(src string, hdr ...string) bool {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://dash.example.com/api/v1/stream", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		c := client(src)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("stream via nginx: %s %s", resp.Proto, resp.Status)
		}
		lines, done := make(chan string, 64), make(chan struct{})
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				select {
				case lines <- sc.Text():
				case <-done:
					return
				}
			}
		}()
		t.Cleanup(func() { close(done); resp.Body.Close(); c.CloseIdleConnections() })
		admitted := false
		deadline := time.After(5 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				switch {
				case !ok || strings.HasPrefix(l, ": over capacity"):
					return false
				case l == "event: hello":
					admitted = true
				case l == "event: frame" && admitted:
					return true
				}
			case <-deadline:
				t.Fatalf("stream from %s: no hello and frame within 5s through nginx (admitted %v)", src, admitted)
			}
		}
	}
	if !stream("127.0.0.5") {
		t.Fatal("the first user's stream was turned away")
	}
	if stream("127.0.0.5") {
		t.Error("the first user got a second stream: its address was not counted")
	}
	if !stream("127.0.0.6") {
		t.Error("a second user behind the proxy was turned away: counted as the proxy")
	}
	if !stream("127.0.0.7", "X-Forwarded-For", "127.0.0.5") {
		t.Error("a client claiming the first user's address was counted as that user")
	}
	if stream("127.0.0.7", "X-Forwarded-For", "127.0.0.8") {
		t.Error("a client escaped its count by claiming another address")
	}

	// The API through nginx answers, under the public name.
	resp, err := client("127.0.0.9").Get("https://dash.example.com/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status via nginx: %s", resp.Status)
	}
}
