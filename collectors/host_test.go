package collectors

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"livedash/config"
)

// hostCollector builds the single job of a host collector table entry.
func hostCollector(tb testing.TB, name, root string) collector {
	tb.Helper()
	cfg := config.Default().Collectors
	for _, row := range table {
		if row.name != name {
			continue
		}
		jobs, err := row.build(&cfg, testEnv(tb, root))
		if err != nil || len(jobs) != 1 {
			tb.Fatalf("build %s: %v (%d jobs)", name, err, len(jobs))
		}
		return jobs[0].c
	}
	tb.Fatalf("no collector %s", name)
	return nil
}

// setRoot points a host collector at another fixture directory.
func setRoot(c collector, root string) {
	switch c := c.(type) {
	case *cpuCollector:
		c.root = root
	case *memoryCollector:
		c.root = root
	case *loadCollector:
		c.root = root
	case *diskCollector:
		c.root = root
	case *networkCollector:
		c.root = root
	case *systemCollector:
		c.root = root
	case *filesystemCollector:
		c.root = root
	}
}

// TestHostGolden runs every host collector over the fixture sequence
// t0 → t1 → reset (counters going backwards: reboot, or a 32-bit counter
// wrapping) one second apart and compares the samples with golden files.
// The first pass yields no rates; the reset pass yields none for the series
// that went backwards, never a spike.
func TestHostGolden(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, name := range []string{"cpu", "memory", "load", "disk", "network", "system", "filesystem"} {
		t.Run(name, func(t *testing.T) {
			c := hostCollector(t, name, "")
			if fc, ok := c.(*filesystemCollector); ok {
				fc.statfs = fakeStatfs
			}
			var out strings.Builder
			for i, step := range []string{"t0", "t1", "reset"} {
				setRoot(c, filepath.Join("testdata", "proc", step))
				samples, err := c.collect(context.Background(), base.Add(time.Duration(i)*time.Second))
				out.WriteString("# " + step + "\n")
				if err != nil {
					out.WriteString("error: " + err.Error() + "\n")
				}
				if s := formatSamples(samples); s != "" {
					out.WriteString(s + "\n")
				}
			}
			golden(t, name+".txt", out.String())
		})
	}
}

func fakeStatfs(path string) (fsStat, error) {
	switch path {
	case "/":
		return fsStat{size: 100 << 30, free: 40 << 30, avail: 35 << 30}, nil
	case "/mnt/my disk":
		return fsStat{size: 10 << 30, free: 10 << 30, avail: 10 << 30}, nil
	}
	return fsStat{}, fs.ErrPermission
}

// TestHostMissingAndUnreadable: a missing file is an error that names the
// path and wraps fs.ErrNotExist; a file that cannot be read (here a
// directory in its place) is an error; garbage is errParse. None panics.
func TestHostMissingAndUnreadable(t *testing.T) {
	empty := t.TempDir()
	unreadable := t.TempDir()
	for _, f := range []string{"stat", "meminfo", "loadavg", "diskstats", "net/dev", "uptime", "self/mounts", "sys/fs/file-nr"} {
		if err := os.MkdirAll(filepath.Join(unreadable, f), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	garbage := filepath.Join("testdata", "proc", "garbage")
	for _, name := range []string{"cpu", "memory", "load", "disk", "network", "system", "filesystem"} {
		t.Run(name, func(t *testing.T) {
			c := hostCollector(t, name, empty)
			_, err := c.collect(context.Background(), time.Now())
			if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), empty) {
				t.Errorf("missing: err = %v, want fs.ErrNotExist naming the path", err)
			}
			setRoot(c, unreadable)
			if _, err := c.collect(context.Background(), time.Now()); err == nil {
				t.Errorf("unreadable: no error")
			}
			if name == "filesystem" {
				return // no garbage fixture: mounts lines are free-form
			}
			setRoot(c, garbage)
			if _, err := c.collect(context.Background(), time.Now()); !errors.Is(err, errParse) {
				t.Errorf("garbage: err = %v, want errParse", err)
			}
		})
	}
}

func TestRatesResetAndForget(t *testing.T) {
	r := newRates()
	t0 := time.Now()
	k := seriesKey{name: "x"}
	r.begin()
	if _, ok := r.rate(k, 100, t0); ok {
		t.Fatal("first observation gave a rate")
	}
	r.end()
	r.begin()
	if v, ok := r.rate(k, 300, t0.Add(2*time.Second)); !ok || v != 100 {
		t.Fatalf("rate = %v, %v; want 100", v, ok)
	}
	r.end()
	r.begin()
	if _, ok := r.rate(k, 5, t0.Add(3*time.Second)); ok {
		t.Fatal("decrease (reset) gave a rate")
	}
	r.end()
	r.begin()
	if v, ok := r.rate(k, 15, t0.Add(4*time.Second)); !ok || v != 10 {
		t.Fatalf("after reset rate = %v, %v; want 10", v, ok)
	}
	r.end()
	r.begin() // k not observed
	r.end()
	if len(r.prev) != 0 {
		t.Fatalf("unobserved series kept: %v", r.prev)
	}
}

func TestUnescapeOctal(t *testing.T) {
	for in, want := range map[string]string{
		`/mnt/my\040disk`: "/mnt/my disk",
		`/a\011b\012c`:    "/a\tb\nc",
		`/back\134slash`:  `/back\slash`,
		`/short\04`:       `/short\04`,
		`/plain`:          "/plain",
	} {
		if got := unescapeOctal([]byte(in)); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}
