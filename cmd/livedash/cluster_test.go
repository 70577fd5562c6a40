package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"livedash/dashboard/store"
	"livedash/dashboard/store/redis/redistest"
	"livedash/dashboard/testcert"
)

// The README's "Running several instances", run as written but for ports
// and paths: redis-server with packaging/redis/livedash.conf; two instances
// started with packaging/cluster/livedash.yaml, each with its own
// LIVEDASH_NODE and --listen; nginx with packaging/nginx/livedash-cluster.conf
// in front (TLS, HTTP/2). A client streaming through nginx sees both nodes'
// frames with consecutive seqs. The instance serving that stream is killed
// with SIGKILL: the stream ends, the client comes back through nginx with its
// Last-Event-ID and gets the next seq of the same epoch — no gap, no
// duplicate, no reset — over several reconnects, and the same cursor gives
// the same frames on /api/v1/frames through nginx.
func TestClusterExampleBehindNginx(t *testing.T) {
	dir := t.TempDir()

	// Redis: the packaged settings file, as written; the test's port and
	// directory come after it on the command line.
	redisConf, err := filepath.Abs(filepath.Join("..", "..", "packaging/redis/livedash.conf"))
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t, redistest.Options{ConfigFile: redisConf})
	for key, want := range map[string]string{"maxmemory-policy": "noeviction", "appendonly": "yes", "appendfsync": "always"} {
		if got, err := srv.Do("CONFIG", "GET", key); err != nil || got != key+"\n"+want {
			t.Fatalf("redis CONFIG GET %s: %q, %v; want %s from packaging/redis/livedash.conf", key, got, err, want)
		}
	}

	// The instances: one configuration file for both.
	conf := substitute(t, "packaging/cluster/livedash.yaml", repoFile(t, "packaging/cluster/livedash.yaml"),
		[2]string{"url: redis://127.0.0.1:6379/0", "url: " + srv.URL()})
	confPath := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{"node-a": redistest.UnusedAddr(t), "node-b": redistest.UnusedAddr(t)}
	children := map[string]interface{ Signal(os.Signal) error }{}
	for _, node := range []string{"node-a", "node-b"} {
		cmd := spawnChild(t, []string{"LIVEDASH_NODE=" + node}, addrs[node], "serve", "--config", confPath, "--listen", addrs[node])
		children[node] = cmd.Process
	}

	// nginx in front.
	certs := testcert.Write(t, dir, "dash.example.com")
	port := freePort(t)
	ngx := substitute(t, "packaging/nginx/livedash-cluster.conf", repoFile(t, "packaging/nginx/livedash-cluster.conf"),
		[2]string{"listen 443 ssl http2;", fmt.Sprintf("listen 127.0.0.1:%d ssl http2;", port)},
		[2]string{"server 127.0.0.1:7071;", "server " + addrs["node-a"] + ";"},
		[2]string{"server 127.0.0.1:7072;", "server " + addrs["node-b"] + ";"},
		[2]string{"/etc/ssl/livedash/fullchain.pem", certs.Cert},
		[2]string{"/etc/ssl/livedash/privkey.pem", certs.Key},
	)
	front := startNginx(t, dir, ngx)
	client := &http.Client{Transport: &http.Transport{
		ForceAttemptHTTP2: true,
		TLSClientConfig:   &tls.Config{RootCAs: certs.Pool, ServerName: "dash.example.com"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, front)
		},
	}}
	defer client.CloseIdleConnections()
	const site = "https://dash.example.com"

	// Both nodes have appended: status through nginx lists them.
	waitFor(t, "both nodes in /api/v1/status through nginx", 20*time.Second, func() bool {
		var st struct {
			Nodes []struct{ Name string } `json:"nodes"`
		}
		if clusterGetJSON(t, client, site+"/api/v1/status", &st) != 200 {
			return false
		}
		seen := map[string]bool{}
		for _, n := range st.Nodes {
			seen[n.Name] = true
		}
		return seen["node-a"] && seen["node-b"]
	})
	var page framesPage
	if code := clusterGetJSON(t, client, site+"/api/v1/frames", &page); code != 200 || page.Next == "" {
		t.Fatalf("/api/v1/frames through nginx: %d %+v", code, page)
	}
	start := seqOfID(t, page.Next)

	// check appends f to got, failing unless it is the frame after the last.
	var got []store.ID
	nodes := map[string]int{}
	check := func(f wireFrame) {
		t.Helper()
		id := seqOfID(t, f.ID)
		prev := start
		if len(got) > 0 {
			prev = got[len(got)-1]
		}
		if id.Epoch != prev.Epoch || id.Seq != prev.Seq+1 {
			t.Fatalf("through nginx: frame %s after %v (frame %d)", f.ID, prev, len(got))
		}
		got = append(got, id)
		for _, s := range f.Samples {
			nodes[s.Labels["node"]]++
		}
	}

	// A stream through nginx, until both nodes' frames arrived.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := openClusterStream(ctx, t, client, site, page.Next)
	for nodes["node-a"] == 0 || nodes["node-b"] == 0 || len(got) < 30 {
		f, ok := st.next(t, 15*time.Second)
		if !ok {
			t.Fatalf("the stream through nginx ended after %d frames: %v", len(got), st.err)
		}
		check(f)
	}
	if len(nodes) != 2 {
		t.Fatalf("frames through nginx carry the nodes %v, want node-a and node-b", nodes)
	}

	// Kill the instance serving the stream; nginx ends the stream.
	serving := ""
	for node, addr := range addrs {
		if n := streamsConnected(t, "http://"+addr); n == 1 {
			serving = node
		} else if n != 0 {
			t.Fatalf("%s holds %v streams", node, n)
		}
	}
	if serving == "" {
		t.Fatal("no instance holds the stream")
	}
	if err := children[serving].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for {
		f, ok := st.next(t, 15*time.Second)
		if !ok {
			break
		}
		check(f) // committed before the kill, or by the other node, and delivered by the dying one
	}
	t.Logf("%s served the stream and was killed after frame %v: %v", serving, got[len(got)-1], st.err)
	cursor := got[len(got)-1].String()

	// Back through nginx with the Last-Event-ID: the next seq, same epoch.
	resumedAt := len(got)
	for round := range 4 {
		st := openClusterStream(ctx, t, client, site, got[len(got)-1].String())
		for range 10 {
			f, ok := st.next(t, 15*time.Second)
			if !ok {
				t.Fatalf("resumed stream %d through nginx ended: %v", round, st.err)
			}
			check(f)
		}
		st.close()
	}
	resumed := got[resumedAt:]

	// The same cursor on /api/v1/frames through nginx: the same frames.
	for range 2 {
		var p framesPage
		url := fmt.Sprintf("%s/api/v1/frames?after=%s&limit=%d", site, cursor, len(resumed))
		if code := clusterGetJSON(t, client, url, &p); code != 200 || len(p.Reset) > 0 && string(p.Reset) != "null" {
			t.Fatalf("GET %s through nginx: %d, reset %s", url, code, p.Reset)
		}
		if len(p.Frames) != len(resumed) {
			t.Fatalf("/api/v1/frames after %s through nginx: %d frames, the stream got %d", cursor, len(p.Frames), len(resumed))
		}
		for i, f := range p.Frames {
			if f.ID != resumed[i].String() {
				t.Fatalf("/api/v1/frames after %s: frame %d is %s, the stream's %v", cursor, i, f.ID, resumed[i])
			}
		}
	}
	refused, _ := os.ReadFile(filepath.Join(dir, "error.log"))
	t.Logf("%d frames through nginx, %d after the kill; nginx refused by the dead instance %d times",
		len(got), len(resumed), strings.Count(string(refused), "Connection refused"))
}

func clusterGetJSON(t *testing.T, c *http.Client, url string, v any) int {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// clusterStream is a stream opened through nginx, read on a goroutine.
type clusterStream struct {
	frames chan wireFrame
	err    error // why it ended, once frames is closed
	bad    error // a reset or a malformed frame, once frames is closed
	cancel context.CancelFunc
}

func openClusterStream(ctx context.Context, t *testing.T, c *http.Client, site, lastID string) *clusterStream {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(ctx, "GET", site+"/api/v1/stream", nil)
	req.Header.Set("Last-Event-ID", lastID)
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("stream through nginx after %s: %v", lastID, err)
	}
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		cancel()
		resp.Body.Close()
		t.Fatalf("stream through nginx after %s: %s %s", lastID, resp.Proto, resp.Status)
	}
	s := &clusterStream{frames: make(chan wireFrame, 1024), cancel: cancel}
	go func() {
		defer close(s.frames)
		defer resp.Body.Close()
		for ev, err := range sse.Read(resp.Body, nil) {
			if err != nil {
				s.err = err
				return
			}
			switch ev.Type {
			case "reset":
				s.bad = fmt.Errorf("reset %s", ev.Data)
				return
			case "frame":
				var f wireFrame
				if err := json.Unmarshal([]byte(ev.Data), &f); err != nil || f.ID != ev.LastEventID {
					s.bad = fmt.Errorf("frame %q (id %q): %v", ev.Data, ev.LastEventID, err)
					return
				}
				select {
				case s.frames <- f:
				case <-ctx.Done():
					return
				}
			}
		}
		s.err = errors.New("ended")
	}()
	t.Cleanup(s.close)
	return s
}

// next returns the next frame, or false when the stream ended (s.err says
// why); a reset or a malformed frame fails the test.
func (s *clusterStream) next(t *testing.T, timeout time.Duration) (wireFrame, bool) {
	t.Helper()
	select {
	case f, ok := <-s.frames:
		if !ok && s.bad != nil {
			t.Fatalf("stream through nginx: %v", s.bad)
		}
		return f, ok
	case <-time.After(timeout):
		t.Fatalf("stream through nginx: nothing within %v", timeout)
		return wireFrame{}, false
	}
}

func (s *clusterStream) close() {
	s.cancel()
	for range s.frames {
	}
}
