package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every problem `config check` lists says where its value came from — the
// file's line, the environment variable, the flag, or "default value" —
// and serve prints the same list, in the same format (a heading, then one
// indented problem per line), before starting anything.
func TestConfigProblemsSayWhereAndServeAgrees(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	doc := "stor:\n  path: /tmp/x.db\nstream:\n  heartbeat: 15\nstore:\n  retention:\n    frames: -5\napi:\n  max_limit: 10\n  default_limit: 50\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LIVEDASH_HTTP_MAX_CONNS", "0")
	check := func(args ...string) string {
		var stderr bytes.Buffer
		err := run(context.Background(), args, io.Discard, &stderr)
		if code := exitCode(err, &stderr); code != 2 {
			t.Fatalf("%v: exit %d", args, code)
		}
		return stderr.String()
	}
	out := check("config", "check", "--config", path)
	want := []string{
		"livedash: the configuration has problems (lines are of " + path + "):",
		`  stor: unknown key (line 1); did you mean "store"?`,
		`  stream.heartbeat = "15": needs a unit (ns, us, ms, s, m, h), e.g. "15s" (line 4)`,
		`  store.retention.frames = "-5": must be at least 1 (line 7)`,
		`  http.max_conns = "0": must be at least 1 (LIVEDASH_HTTP_MAX_CONNS)`,
		`  api.default_limit = "50": must not exceed api.max_limit (10) (line 10)`,
	}
	for _, w := range want {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("config check output lacks %q:\n%s", w, out)
		}
	}
	located := regexp.MustCompile(`\((line \d+|lines \d+ and \d+|LIVEDASH_[A-Z_]+|--[a-z.-]+|default value)\)`)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		if !strings.HasPrefix(line, "  ") || !located.MatchString(line) {
			t.Errorf("problem line %q is not indented or does not say where its value came from", line)
		}
	}

	store := filepath.Join(t.TempDir(), "x.db")
	serve := check("serve", "--config", path, "--store", store)
	if serve != out {
		t.Errorf("serve prints\n%s\nconfig check prints\n%s", serve, out)
	}
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Fatalf("serve created the store despite the problems: %v", err)
	}
	// A flag's value is named by its flag.
	if out := check("serve", "--listen", "nowhere", "--store", store); !strings.Contains(out, `  listen = "nowhere": must be host:port, e.g. "127.0.0.1:7070" or ":7070" (--listen)`) {
		t.Errorf("flag problem:\n%s", out)
	}
}
