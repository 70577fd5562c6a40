package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the repository's top directory (tests run in cmd/livedash).
func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// `livedash --help` (and -h, help) lists the commands, then serve's flags.
func TestHelpListsCommands(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "-help", "help"} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{arg}, &stdout, &stderr); err != nil || stderr.Len() != 0 {
			t.Fatalf("%s: %v %q", arg, err, stderr.String())
		}
		out := stdout.String()
		for _, want := range []string{"livedash [serve]", "config check", "tail", "healthcheck", "version", "-listen", "-config"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q:\n%s", arg, want, out)
			}
		}
	}
}

// `make server` stamps the binary: `livedash version` names the commit
// (git rev-parse HEAD) and the commit's date. `make run &` then `kill %1`
// stops livedash with make — cleanly, its last log line says so — and
// leaves nothing behind, so the next `make run` starts on the same port and
// store. Both with job control (an interactive shell, where the signal goes
// to make and livedash at once) and without (a script, where it goes to make,
// which relays it).
func TestMakeBuildStampsAndRunStopsWithItsJob(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary with make")
	}
	for _, tool := range []string{"make", "git", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	root := repoRoot(t)
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	bin := t.TempDir()
	build := exec.Command("make", "-s", "server", "BINDIR="+bin)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make server: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(bin, "livedash"), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if v := string(out); !strings.Contains(v, "commit "+string(head[:12])) || !strings.Contains(v, "Z, go1.") {
		t.Fatalf("livedash version = %q: want the commit %.12s and a date", v, head)
	}

	for _, mode := range []string{"script", "interactive"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
			jobControl := ""
			if mode == "interactive" {
				jobControl = "set -m"
			}
			// Each round: make run in the background, wait until it is
			// ready, kill the job, wait for it; then nothing may remain.
			script := jobControl + `
set -u
for round in 1 2; do
	make -s run BINDIR="$BIN" >"$DIR/log$round" 2>&1 &
	ready=
	for i in $(seq 1 150); do
		if "$BIN/livedash" healthcheck --url "http://$ADDR/readyz" >/dev/null 2>&1; then ready=1; break; fi
		sleep 0.2
	done
	if [ -z "$ready" ]; then echo "round $round: not ready"; cat "$DIR/log$round"; kill %1; exit 1; fi
	kill %1
	wait %1
	for i in $(seq 1 50); do
		pgrep -f "^$BIN/livedash serve" >/dev/null || break
		sleep 0.1
	done
	if pgrep -f "^$BIN/livedash serve" >/dev/null; then echo "round $round: livedash still running"; pkill -KILL -f "^$BIN/livedash serve"; exit 1; fi
done
`
			cmd := exec.Command("bash", "-c", script)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "BIN="+bin, "DIR="+dir, "ADDR="+addr,
				"LIVEDASH_LISTEN="+addr, "LIVEDASH_STORE_PATH="+filepath.Join(dir, "livedash.db"))
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a job-control shell of our own
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, round := range []string{"log1", "log2"} {
				log, _ := os.ReadFile(filepath.Join(dir, round))
				if !bytes.Contains(log, []byte("livedash listening")) || !bytes.Contains(log, []byte("livedash stopped")) {
					t.Errorf("%s: no clean start and stop:\n%s", round, log)
				}
			}
		})
	}
}

// A fresh clone built with plain `go build`, without the asset step, serves
// a page that says the dashboard is not in the binary and how to build it;
// /api/v1/status says the page is incomplete and the API works.
func TestFreshCloneGoBuildServesNotice(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a copy of the repository")
	}
	root := repoRoot(t)
	// What a clone holds: tracked files and new ones, not ignored ones
	// (node_modules, web/vendor).
	list, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	clone := t.TempDir()
	for _, name := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		st, err := os.Lstat(src)
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the working tree, or not a file
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(clone, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(clone, "assets", "web", "vendor")); err == nil {
		t.Fatal("the copy has assets/web/vendor: it is not what a clone holds")
	}
	build := exec.Command("go", "build", "-o", "livedash", "./cmd/livedash")
	build.Dir = clone
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in a fresh clone: %v\n%s", err, out)
	}

	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	var log syncBuffer
	srv := exec.Command(filepath.Join(clone, "livedash"), "serve", "--listen", addr, "--store", filepath.Join(clone, "data.db"))
	srv.Stdout, srv.Stderr = io.Discard, &log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		_ = srv.Wait()
	}()
	base := "http://" + addr
	waitFor(t, "the server", 15*time.Second, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!bytes.Contains(page, []byte("no dashboard page")) || !bytes.Contains(page, []byte("go generate ./assets")) {
		t.Fatalf("GET /: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), page)
	}
	var st struct {
		Page        string `json:"page"`
		PageProblem string `json:"page_problem"`
		Host        string `json:"host"`
	}
	getJSON(t, base+"/api/v1/status", &st)
	if st.Page != "incomplete" || !strings.Contains(st.PageProblem, "go generate ./assets") || st.Host == "" {
		t.Fatalf("status: %+v", st)
	}
	if !strings.Contains(log.String(), "the dashboard page is not in this binary") {
		t.Fatalf("no warning in the log:\n%s", log.String())
	}
	var latest struct{ Head string }
	if resp := getJSON(t, base+"/api/v1/latest", &latest); resp.StatusCode != 200 || latest.Head == "" {
		t.Fatalf("latest: %d %+v", resp.StatusCode, latest)
	}
}
