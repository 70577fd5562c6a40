package collectors

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"livedash/config"
)

func execFor(tb testing.TB, script string, maxOut int64) *execCollector {
	tb.Helper()
	cfg := config.Default().Collectors
	cfg.Exec.Commands = []config.ExecCommand{{Name: "job", Command: "sh", Args: []string{"-c", script}}}
	if maxOut > 0 {
		cfg.Exec.MaxOutputBytes = maxOut
	}
	jobs, err := newExec(&cfg, testEnv(tb, ""))
	if err != nil || len(jobs) != 1 {
		tb.Fatalf("newExec: %v", err)
	}
	return jobs[0].c.(*execCollector)
}

func TestExec(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		want         string
		wantErr      bool
	}{
		{"lines", `printf '# comment\n\nqueue_depth 12\nworkers 4.5\n'`,
			"queue_depth{command=\"job\"} 12\nworkers{command=\"job\"} 4.5", false},
		{"json", `echo '{"b": 2, "a": 1e3}'`, "a{command=\"job\"} 1000\nb{command=\"job\"} 2", false},
		{"garbage lines keep the good ones", `printf 'good 1\nbad-name 2\nx notanumber\ny 1 2\nz NaN\n'`,
			"good{command=\"job\"} 1", true},
		{"json with bad value", `echo '{"a": "x", "b": 1}'`, "b{command=\"job\"} 1", true},
		{"broken json", `echo '{"a": 1'`, "", true},
		{"non-zero exit", `echo 'a 1'; echo oops >&2; exit 3`, "", true},
		{"no output", `true`, "", false},
		{"command not found", `exec /nonexistent/cmd`, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := execFor(t, tc.script, 0)
			samples, err := c.collect(context.Background(), time.Now())
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got := formatSamples(samples); got != tc.want {
				t.Errorf("samples:\n%s\nwant:\n%s", got, tc.want)
			}
			wantUp := 1.0
			if tc.wantErr {
				wantUp = 0
			}
			if v := counterValue(t, c.up); v != wantUp {
				t.Errorf("up = %v, want %v", v, wantUp)
			}
		})
	}
}

// TestExecTimeoutKillsGroup: on timeout the whole process group dies,
// including a background grandchild that holds stdout open.
func TestExecTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	c := execFor(t, `sleep 30 & echo $! > `+pidFile+`; echo a 1; wait`, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.collect(ctx, time.Now())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	// A ceiling that tells the 300 ms timeout from waiting for the 30 s
	// sleep that holds stdout open.
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("collect took %v after a 300ms timeout", d)
	}
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	// The grandchild must be gone (or a zombie reaped by init soon).
	deadline := time.Now().Add(15 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %s still running after the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExecOutputTooLarge(t *testing.T) {
	c := execFor(t, `yes 'a 1' | head -c 100000`, 1000)
	_, err := c.collect(context.Background(), time.Now())
	if !errors.Is(err, errOutputTooLarge) {
		t.Fatalf("err = %v, want errOutputTooLarge", err)
	}
}
