package config

import (
	"strings"
	"testing"
)

// Origin names the line of every key in the file (list items and aliases
// too), the environment variable that overrides it, or a flag recorded
// with SetBy; Locate appends that to Validate's problems only.
func TestOriginLocatesValidateProblems(t *testing.T) {
	path := writeFile(t, `base: &b
  interval: 0s
listen: ":7070"
collectors:
  http:
    targets:
      - name: a
        url: ftp://x
  cpu: *b
store:
  retention:
    frames: 0
`)
	_, o, err := LoadWithOrigin(path, []string{"LIVEDASH_API_MAX_LIMIT=0"})
	if err == nil || !strings.Contains(err.Error(), "base: unknown key (line 1)") {
		t.Fatalf("Load: %v", err)
	}
	for path, want := range map[string]string{
		"listen":                            "line 3",
		"collectors.http.targets[0].url":    "line 8",
		"collectors.cpu":                    "line 9",
		"store.retention.frames":            "line 12",
		"api.max_limit":                     "LIVEDASH_API_MAX_LIMIT",
		"stream.heartbeat":                  "",
		"collectors.http.targets[0].method": "line 7", // the item's line: the item leaves it out
	} {
		if got := o.Where(path); got != want {
			t.Errorf("Where(%s) = %q, want %q", path, got, want)
		}
	}
	o.SetBy("listen", "--listen")
	if got := o.Where("listen"); got != "--listen" {
		t.Errorf("Where(listen) after SetBy = %q", got)
	}

	cfg := Default()
	cfg.Listen = "nowhere"
	cfg.Store.Retention.Frames = 0
	cfg.API.MaxLimit = 0
	cfg.Stream.Heartbeat = 0
	verr := o.Locate(cfg.Validate())
	got := verr.Error()
	for _, want := range []string{
		`listen = "nowhere": must be host:port, e.g. "127.0.0.1:7070" or ":7070" (--listen)`,
		`store.retention.frames = "0": must be at least 1 (line 12)`,
		`api.max_limit = "0": must be at least 1 (LIVEDASH_API_MAX_LIMIT)`,
		`stream.heartbeat = "0s": must be between 1s and 55s (idle proxies cut connections at about 60s) (default value)`,
	} {
		if !strings.Contains(got, want+"\n") && !strings.HasSuffix(got, want) {
			t.Errorf("Locate(Validate) lacks %q:\n%s", want, got)
		}
	}
	var nilOrigin *Origin
	if nilOrigin.Locate(verr) != verr || nilOrigin.Where("listen") != "" {
		t.Error("a nil Origin must do nothing")
	}
}
