package collectors

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Host collectors read kernel text files under Options.ProcRoot and parse
// them with the pure functions of their files (parseStat, parseMeminfo, ...),
// which tests feed with fixtures from testdata/. They parse by hand rather
// than through prometheus/procfs because procfs's /proc/stat parser uses
// fmt.Sscanf and allocates per field, which alone would use up the default
// set's CPU budget of 5 µs per sample (BenchmarkDefaultSetCollect reports
// the cost per sample).

// errParse marks malformed kernel file content.
var errParse = errors.New("collectors: malformed input")

func readProc(root, name string) ([]byte, error) {
	// os errors carry the path already ("open /proc/stat: ...").
	return os.ReadFile(filepath.Join(root, name))
}

// lines calls fn for every line of data without its newline.
func lines(data []byte, fn func(line []byte) error) error {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var line []byte
		if i < 0 {
			line, data = data, nil
		} else {
			line, data = data[:i], data[i+1:]
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	return nil
}

// nextField returns the first space- or tab-separated field of b and the rest.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	j := i
	for j < len(b) && b[j] != ' ' && b[j] != '\t' {
		j++
	}
	return b[i:j], b[j:]
}

// parseUint parses a decimal uint64 without allocating.
func parseUint(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 20 {
		return 0, fmt.Errorf("%w: number %q", errParse, b)
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: number %q", errParse, b)
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, fmt.Errorf("%w: number %q out of range", errParse, b)
		}
		n = n*10 + d
	}
	return n, nil
}

// uints parses up to len(dst) decimal fields of b into dst and returns how
// many it parsed.
func uints(b []byte, dst []uint64) (int, error) {
	n := 0
	for n < len(dst) {
		var f []byte
		f, b = nextField(b)
		if len(f) == 0 {
			break
		}
		v, err := parseUint(f)
		if err != nil {
			return n, err
		}
		dst[n] = v
		n++
	}
	return n, nil
}
