package collectors

import (
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/golden")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// formatSamples renders samples one per line, sorted, in exposition-like
// text: name{k="v",...} value.
func formatSamples(samples []Sample) string {
	lines := make([]string, 0, len(samples))
	for _, s := range samples {
		var b strings.Builder
		b.WriteString(s.Name)
		if len(s.Labels) > 0 {
			b.WriteByte('{')
			for i, k := range sortedKeys(s.Labels) {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "%s=%q", k, s.Labels[k])
			}
			b.WriteByte('}')
		}
		fmt.Fprintf(&b, " %.6g", s.Value)
		lines = append(lines, b.String())
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// golden compares got with testdata/golden/<name>, or rewrites it with -update.
func golden(tb testing.TB, name, got string) {
	tb.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if got != string(want) {
		tb.Errorf("%s differs from golden file (run with -update if intended)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func testEnv(tb testing.TB, root string) env {
	tb.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return env{opts: Options{ProcRoot: root, Logger: quietLogger()}, log: quietLogger(), m: m}
}

func nan() float64 { return math.NaN() }
func inf() float64 { return math.Inf(1) }
