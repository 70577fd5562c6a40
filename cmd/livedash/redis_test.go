package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"livedash/collectors"
	"livedash/config"
	"livedash/dashboard/store"
	"livedash/dashboard/store/redis"
	"livedash/dashboard/store/redis/redistest"
)

// childServeEnv, when set, makes the test binary run `livedash` with the
// arguments it holds (separated by \x1f) instead of the tests: a server the
// test can kill with SIGKILL.
const childServeEnv = "LDTEST_CHILD_SERVE_ARGS" // not LIVEDASH_*: the child would reject it as an unknown setting

func runChild() {
	args := strings.Split(os.Getenv(childServeEnv), "\x1f")
	os.Exit(exitCode(run(context.Background(), args, io.Discard, os.Stderr), os.Stderr))
}

// redisConf writes a configuration for an instance on the Redis ring at url
// under prefix, named node, with the synthetic collector ticking every
// interval, and returns its path.
func redisConf(t *testing.T, url, prefix, node string, interval time.Duration, extra string) string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), node+".yaml")
	body := fmt.Sprintf("node: %s\nstore:\n  redis:\n    url: %s\n    key_prefix: %s\n%scollectors:\n  synthetic:\n    enabled: true\n    interval: %s\n    series: 2\n",
		node, url, prefix, extra, interval)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}

type wireFrame struct {
	ID      string `json:"id"`
	Topic   string `json:"topic"`
	Samples []struct {
		Labels map[string]string `json:"labels"`
	} `json:"samples"`
}

// streamFrom reads frames from a stream resuming after cursor until n frames
// arrived, failing on a reset, and returns them.
func streamFrom(t *testing.T, base, cursor string, n int) []wireFrame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/stream", nil)
	req.Header.Set("Last-Event-ID", cursor)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []wireFrame
	for ev, err := range sse.Read(resp.Body, nil) {
		if err != nil {
			t.Fatalf("stream from %s after %s: %v (%d of %d frames)", base, cursor, err, len(out), n)
		}
		switch ev.Type {
		case "reset":
			t.Fatalf("stream from %s after %s: reset %s", base, cursor, ev.Data)
		case "frame":
			var f wireFrame
			if err := json.Unmarshal([]byte(ev.Data), &f); err != nil || f.ID != ev.LastEventID {
				t.Fatalf("frame %q: %v", ev.Data, err)
			}
			out = append(out, f)
			if len(out) == n {
				return out
			}
		}
	}
	t.Fatalf("stream from %s ended after %d of %d frames", base, len(out), n)
	return nil
}

func seqOfID(t *testing.T, id string) store.ID {
	t.Helper()
	v, err := store.ParseID(id)
	if err != nil {
		t.Fatalf("ID %q: %v", id, err)
	}
	return v
}

// nodesOf returns the node labels of the synthetic frames among fs.
func nodesOf(fs []wireFrame) map[string]int {
	out := map[string]int{}
	for _, f := range fs {
		if f.Topic != "synthetic" {
			continue
		}
		for _, s := range f.Samples {
			out[s.Labels["node"]]++
		}
	}
	return out
}

// startChild runs livedash in a child process (the test binary in
// childServeEnv mode) on a free port and waits until it is ready.
func startChild(t *testing.T, args ...string) (base string, cmd *exec.Cmd) {
	t.Helper()
	addr := redistest.UnusedAddr(t)
	args = append([]string{"serve", "--listen", addr, "--store", filepath.Join(t.TempDir(), "unused.db")}, args...)
	return "http://" + addr, spawnChild(t, nil, addr, args...)
}

// spawnChild runs `livedash args…` in a child process (the test binary in
// childServeEnv mode) with env added to the test's environment, waits until
// it is ready at addr (its listen address), and kills it when the test ends.
func spawnChild(t *testing.T, env []string, addr string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), env...), childServeEnv+"="+strings.Join(args, "\x1f"))
	var log syncBuffer
	cmd.Stderr = &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("child %v log:\n%s", env, log.String())
		}
	})
	waitFor(t, "the child to be ready", 20*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return cmd
}

// startReady starts a server (startServer) and waits until it is ready: on
// Redis the standby answers until the store is open.
func startReady(t *testing.T, args ...string) *testServer {
	t.Helper()
	ts := startServer(t, args...)
	waitFor(t, "the server to be ready", 20*time.Second, func() bool {
		resp, err := http.Get(ts.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return ts
}

// Two instances on one Redis ring, both collecting. A client streams from A
// and sees both nodes' frames (each carries its node label) with
// consecutive seqs; A is killed with SIGKILL; the client resumes on B with
// its Last-Event-ID and gets the next seq of the same epoch, no reset; the
// same cursor works on B's /api/v1/frames.
func TestRedisResumeOnAnotherInstanceAfterSIGKILL(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, child := startChild(t, "--config", redisConf(t, srv.URL(), "kill", "node-a", 50*time.Millisecond, ""))
	b := startReady(t, "--config", redisConf(t, srv.URL(), "kill", "node-b", 50*time.Millisecond, ""))

	start := pollFrames(t, a+"/api/v1/frames").Next
	fs := streamFrom(t, a, start, 60)
	nodes := nodesOf(fs)
	if nodes["node-a"] == 0 || nodes["node-b"] == 0 || len(nodes) != 2 {
		t.Fatalf("frames streamed from A carry nodes %v, want node-a and node-b", nodes)
	}
	prev := seqOfID(t, start)
	for _, f := range fs {
		id := seqOfID(t, f.ID)
		if id.Epoch != prev.Epoch || id.Seq != prev.Seq+1 {
			t.Fatalf("frame %s after %v", f.ID, prev)
		}
		prev = id
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	last := fs[len(fs)-1].ID
	more := streamFrom(t, b.URL, last, 20)
	if got := seqOfID(t, more[0].ID); got.Epoch != prev.Epoch || got.Seq != prev.Seq+1 {
		t.Fatalf("resumed on B after %s with %s", last, more[0].ID)
	}
	for i := 1; i < len(more); i++ {
		if seqOfID(t, more[i].ID).Seq != seqOfID(t, more[i-1].ID).Seq+1 {
			t.Fatalf("B streamed %s after %s", more[i].ID, more[i-1].ID)
		}
	}
	p := pollFrames(t, b.URL+"/api/v1/frames?limit=5&after="+last)
	if len(p.Frames) == 0 || p.Frames[0].ID != more[0].ID {
		t.Fatalf("B's /api/v1/frames after %s: %+v", last, p)
	}
}

// The ordering property across instances: while both append, a client
// hopping at random between two instances and between long polls and
// stream reconnects, always resuming with the last ID it got, ends with
// exactly the ring's frames — no gap, no duplicate, no reset.
func TestRedisClientHopsBetweenInstances(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := startReady(t, "--config", redisConf(t, srv.URL(), "hop", "node-a", 20*time.Millisecond, ""))
	b := startReady(t, "--config", redisConf(t, srv.URL(), "hop", "node-b", 20*time.Millisecond, ""))
	bases := []string{a.URL, b.URL}
	start := pollFrames(t, a.URL+"/api/v1/frames").Next
	cursor := start
	var seen []string
	hops := 0
	deadline := time.Now().Add(4 * time.Second)
	for round := 0; time.Now().Before(deadline); round++ {
		base := bases[rand.IntN(2)]
		if rand.IntN(2) == 0 {
			p := pollFrames(t, fmt.Sprintf("%s/api/v1/frames?after=%s&limit=%d&wait=2s", base, cursor, 1+rand.IntN(40)))
			for _, f := range p.Frames {
				seen = append(seen, f.ID)
			}
			cursor = p.Next
		} else {
			ids := streamFrames(t, base, cursor, 1+rand.IntN(60))
			seen = append(seen, ids...)
			cursor = ids[len(ids)-1]
		}
		hops++
	}
	want := ringIDs(t, b.URL, start, cursor)
	if len(seen) < 100 || len(seen) != len(want) {
		t.Fatalf("client saw %d frames, the ring holds %d over the same span", len(seen), len(want))
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("frame %d: client %s, ring %s", i, seen[i], want[i])
		}
	}
	for i := 1; i < len(seen); i++ {
		if seqOfID(t, seen[i]).Seq != seqOfID(t, seen[i-1]).Seq+1 {
			t.Fatalf("%s after %s", seen[i], seen[i-1])
		}
	}
	t.Logf("%d frames over %d hops between two instances", len(seen), hops)
}

// Redis unreachable at start: the server listens at once; /healthz is 200,
// /readyz 503 and a stream gets 200 with a retry: hint (an EventSource
// comes back) while it retries; once Redis answers it serves. With
// store.redis.require it exits at once with an error naming the URL,
// password redacted.
func TestRedisUnreachableAtStart(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Password: "s3cret-pw"})
	srv.Kill()
	ts := startServer(t, "--config", redisConf(t, srv.URL(), "start", "node-a", time.Second, ""))
	if resp := getJSON(t, ts.URL+"/healthz", nil); resp.StatusCode != 200 {
		t.Fatalf("healthz %d while Redis is down", resp.StatusCode)
	}
	var body struct{ Error struct{ Code string } }
	if resp := getJSON(t, ts.URL+"/readyz", &body); resp.StatusCode != 503 || body.Error.Code != "store_unavailable" {
		t.Fatalf("readyz %d %+v while Redis is down", resp.StatusCode, body)
	}
	resp, err := http.Get(ts.URL + "/api/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || !strings.Contains(string(sb), "retry: ") {
		t.Fatalf("stream while Redis is down: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), sb)
	}
	if resp := getJSON(t, ts.URL+"/api/v1/frames", &body); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("frames while Redis is down: %d", resp.StatusCode)
	}
	waitFor(t, "a logged retry", 10*time.Second, func() bool { return strings.Contains(ts.Log.String(), "Redis unreachable; retrying") })
	if strings.Contains(ts.Log.String(), "s3cret-pw") || !strings.Contains(ts.Log.String(), srv.Addr) {
		t.Fatalf("the log must name the URL without its password:\n%s", ts.Log.String())
	}
	srv.Restart()
	waitFor(t, "ready once Redis answers", 20*time.Second, func() bool {
		resp, err := http.Get(ts.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	waitFor(t, "frames", 10*time.Second, func() bool { return len(pollFrames(t, ts.URL+"/api/v1/frames?after=oldest").Frames) > 0 })

	srv.Kill()
	startAt := time.Now()
	var stderr syncBuffer
	err = run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0", "--config",
		redisConf(t, srv.URL(), "start", "node-r", time.Second, "    require: true\n")}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), srv.Addr) || strings.Contains(err.Error(), "s3cret-pw") || !strings.Contains(err.Error(), "require") {
		t.Fatalf("with require: %v", err)
	}
	if d := time.Since(startAt); d > 5*time.Second {
		t.Fatalf("with require it took %v to give up", d)
	}
}

// Redis restarted without its data under a running server: the server
// serves again on the ring's new epoch at the same address, and a client
// resuming with an ID of the old epoch gets reset unknown_epoch — on the
// stream and on /api/v1/frames — then frames of the new one.
func TestRedisRestartedWithoutDataResets(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ts := startReady(t, "--config", redisConf(t, srv.URL(), "wipe", "node-a", 50*time.Millisecond, ""))
	waitFor(t, "frames", 10*time.Second, func() bool { return len(pollFrames(t, ts.URL+"/api/v1/frames?after=oldest").Frames) > 2 })
	old := pollFrames(t, ts.URL+"/api/v1/frames?after=oldest&limit=1").Frames[0].ID
	oldEpoch := seqOfID(t, old).Epoch
	srv.Restart()
	var st struct{ Epoch string }
	waitFor(t, "serving on a new epoch", 30*time.Second, func() bool {
		resp, err := http.Get(ts.URL + "/api/v1/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&st) != nil {
			return false
		}
		return st.Epoch != fmt.Sprintf("%016x", oldEpoch)
	})
	var p struct {
		Frames []struct{ ID string }
		Reset  *struct{ Reason string }
	}
	getJSON(t, ts.URL+"/api/v1/frames?after="+old, &p)
	if p.Reset == nil || p.Reset.Reason != "unknown_epoch" {
		t.Fatalf("old cursor on /api/v1/frames: %+v", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/stream", nil)
	req.Header.Set("Last-Event-ID", old)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sawReset := false
	for ev, err := range sse.Read(resp.Body, nil) {
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		if ev.Type == "reset" {
			if !strings.Contains(ev.Data, "unknown_epoch") {
				t.Fatalf("reset %s", ev.Data)
			}
			sawReset = true
		}
		if ev.Type == "frame" {
			if !sawReset || seqOfID(t, ev.LastEventID).Epoch == oldEpoch {
				t.Fatalf("frame %s (reset seen: %v)", ev.LastEventID, sawReset)
			}
			break
		}
	}
	if !strings.Contains(ts.Log.String(), "lost its epoch") {
		t.Fatalf("no log line about the lost epoch:\n%s", ts.Log.String())
	}
}

// With a shared store the built-in collectors' samples carry node=<node>;
// a scraped sample's own node label is kept as exported_node, and the
// collector's map is not changed.
func TestStoreSinkNodeLabel(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	st, err := redis.Open(context.Background(), redis.Options{URL: srv.URL(), Require: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mine := map[string]string{"node": "target-7", "job": "x"}
	batches := []collectors.Batch{{Topic: "t", Time: time.Now(), Samples: []collectors.Sample{
		{Name: "a", Value: 1}, {Name: "b", Labels: mine, Value: 2},
	}}}
	var got []store.Frame
	st.OnCommit(func(fs []store.Frame) { got = append(got, fs...) })
	if err := (storeSink{store: st, node: "web-1"}).Append(batches); err != nil {
		t.Fatal(err)
	}
	s := got[0].Samples
	if s[0].Labels["node"] != "web-1" || s[1].Labels["node"] != "web-1" || s[1].Labels["exported_node"] != "target-7" || s[1].Labels["job"] != "x" {
		t.Fatalf("labels %v %v", s[0].Labels, s[1].Labels)
	}
	if mine["node"] != "target-7" || len(mine) != 2 {
		t.Fatalf("the collector's labels changed: %v", mine)
	}
	if err := (storeSink{store: st}).Append(batches); err != nil {
		t.Fatal(err)
	}
	if l := got[1].Samples[0].Labels; l != nil {
		t.Fatalf("without a node: labels %v", l)
	}
}

// nodeStatus names this node and lists the nodes seen on the shared ring;
// with a store of its own, only itself.
func TestNodeStatus(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, err := redis.Open(context.Background(), redis.Options{URL: srv.URL(), Node: "a", Require: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := redis.Open(context.Background(), redis.Options{URL: srv.URL(), Node: "b", Require: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Start()
	for _, s := range []*redis.Store{b, a} {
		if _, err := s.Append([]store.Batch{{Topic: "t", Samples: []store.Sample{{Name: "x", Value: 1}}}}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Default()
	cfg.Node = "a"
	waitFor(t, "a to see both nodes", 5*time.Second, func() bool { return len(nodeStatus(cfg, a)().Nodes) == 2 })
	ns := nodeStatus(cfg, a)()
	headA := store.ID{Epoch: a.Epoch(), Seq: 2}.String()
	if ns.Node != "a" || ns.Nodes[0].Name != "a" || ns.Nodes[1].Name != "b" || ns.Nodes[0].Head != headA || ns.Nodes[0].LastSeen == nil {
		t.Fatalf("status %+v", ns)
	}
	out, _ := json.Marshal(ns)
	if !strings.Contains(string(out), `"node":"a"`) {
		t.Fatalf("JSON %s", out)
	}
}

// The socket is served in turns: a connection that arrives between two
// turns waits and is served by the next one, and closing a turn leaves the
// socket open.
func TestSocketTurns(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock, err := newSocket(ln)
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	serve := func(tn *turn, reply string) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = http.Serve(tn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "close")
				fmt.Fprint(w, reply)
			}))
		}()
		return done
	}
	get := func() string {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	t1 := sock.turn()
	done := serve(t1, "one")
	if got := get(); got != "one" {
		t.Fatalf("first turn answered %q", got)
	}
	if err := t1.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
	// Between turns: the connection waits in the backlog.
	answer := make(chan string, 1)
	go func() { answer <- get() }()
	time.Sleep(100 * time.Millisecond)
	t2 := sock.turn()
	done = serve(t2, "two")
	select {
	case got := <-answer:
		if got != "two" {
			t.Fatalf("second turn answered %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a connection made between turns was not served")
	}
	_ = t2.Close()
	<-done
	c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	if err != nil {
		t.Fatalf("socket closed with its turn: %v", err)
	}
	c.Close()
}

// Redis lost while serving, then back with its data: /readyz turns 503,
// appends fail and are counted (the collectors' batches are dropped, not
// buffered), an open stream stays open on heartbeats; once Redis is back
// the server is ready again and the same stream carries new frames with the
// next seqs of the same epoch.
func TestRedisLostWhileServing(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Persist: true})
	ts := startReady(t, "--config", redisConf(t, srv.URL(), "lost", "node-a", 50*time.Millisecond,
		"    dial_timeout: 300ms\n    read_timeout: 300ms\n    write_timeout: 300ms\nstream:\n  heartbeat: 1s\n"))
	waitFor(t, "frames", 10*time.Second, func() bool { return len(pollFrames(t, ts.URL+"/api/v1/frames?after=oldest").Frames) > 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	nextID := func(d time.Duration) string {
		t.Helper()
		deadline := time.After(d)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("stream ended")
				}
				if id, ok := strings.CutPrefix(l, "id: "); ok && strings.Contains(id, "-") {
					return id
				}
			case <-deadline:
				t.Fatalf("no frame within %v", d)
			}
		}
	}
	before := seqOfID(t, nextID(5*time.Second))

	srv.Kill()
	waitFor(t, "unready with Redis down", 10*time.Second, func() bool {
		resp, err := http.Get(ts.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	waitFor(t, "failed appends counted", 10*time.Second, func() bool {
		return metric(t, ts.URL, "livedash_store_append_errors_total ") >= 3 &&
			metric(t, ts.URL, `livedash_store_redis_append_errors_total{kind="unreachable"}`) >= 1
	})
	// The stream stays open: heartbeats keep coming, no frame does.
	for drained := false; !drained; {
		select {
		case <-lines:
		default:
			drained = true
		}
	}
	hb := 0
	deadline := time.After(3500 * time.Millisecond)
	for hb < 2 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stream closed while Redis was down")
			}
			if strings.HasPrefix(l, ": hb ") {
				hb++
			}
			if strings.HasPrefix(l, "id: ") {
				t.Fatalf("frame %s while Redis was down", l)
			}
		case <-deadline:
			t.Fatalf("%d heartbeats in 3.5s while Redis was down", hb)
		}
	}

	srv.Restart()
	waitFor(t, "ready once Redis is back", 20*time.Second, func() bool {
		resp, err := http.Get(ts.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	after := seqOfID(t, nextID(10*time.Second))
	if after.Epoch != before.Epoch || after.Seq <= before.Seq {
		t.Fatalf("after Redis came back: %v, before %v", after, before)
	}
	if metric(t, ts.URL, "livedash_store_redis_reconnects_total ") < 1 {
		t.Fatal("no reconnect counted")
	}
}
