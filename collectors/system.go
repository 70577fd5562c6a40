package collectors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"livedash/config"
)

// systemCollector reports system_uptime_seconds, processes running and
// blocked, forks, context switches and interrupts per second, and open file
// handles (system_file_descriptors_allocated / _maximum, node_exporter's
// filefd). A file that cannot be read costs only its own samples; the error
// is still reported.
type systemCollector struct {
	root  string
	stat  procStat
	rates *rates
}

func newSystem(_ *config.Collectors, e env) ([]*job, error) {
	return []*job{{c: &systemCollector{root: e.opts.ProcRoot, rates: newRates()}}}, nil
}

func (c *systemCollector) collect(_ context.Context, now time.Time) ([]Sample, error) {
	var errs []error
	out := make([]Sample, 0, 8)
	if data, err := readProc(c.root, "uptime"); err != nil {
		errs = append(errs, err)
	} else if up, err := parseUptime(data); err != nil {
		errs = append(errs, err)
	} else {
		out = append(out, Sample{Name: "system_uptime_seconds", Value: up})
	}
	if data, err := readProc(c.root, "stat"); err != nil {
		errs = append(errs, err)
	} else if err := parseStat(data, &c.stat); err != nil {
		errs = append(errs, err)
	} else {
		out = c.statSamples(out, now)
	}
	if data, err := readProc(c.root, "sys/fs/file-nr"); err != nil {
		errs = append(errs, err)
	} else if alloc, maxFD, err := parseFileNr(data); err != nil {
		errs = append(errs, err)
	} else {
		out = append(out,
			Sample{Name: "system_file_descriptors_allocated", Value: float64(alloc)},
			Sample{Name: "system_file_descriptors_maximum", Value: float64(maxFD)})
	}
	return out, errors.Join(errs...)
}

func (c *systemCollector) statSamples(out []Sample, now time.Time) []Sample {
	s := &c.stat
	if s.hasRunning {
		out = append(out, Sample{Name: "system_processes_running", Value: float64(s.running)})
	}
	if s.hasBlocked {
		out = append(out, Sample{Name: "system_processes_blocked", Value: float64(s.blocked)})
	}
	c.rates.begin()
	if s.hasForks {
		if r, ok := c.rates.rate(seriesKey{name: "forks"}, float64(s.forks), now); ok {
			out = append(out, Sample{Name: "system_forks_per_second", Value: r})
		}
	}
	if s.hasCtxt {
		if r, ok := c.rates.rate(seriesKey{name: "ctxt"}, float64(s.ctxt), now); ok {
			out = append(out, Sample{Name: "system_context_switches_per_second", Value: r})
		}
	}
	if r, ok := c.rates.rate(seriesKey{name: "intr"}, float64(s.intr), now); ok {
		out = append(out, Sample{Name: "system_interrupts_per_second", Value: r})
	}
	c.rates.end()
	return out
}

// parseUptime parses /proc/uptime: "12345.67 54321.00".
func parseUptime(data []byte) (float64, error) {
	f, _ := nextField(data)
	v, err := strconv.ParseFloat(string(f), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("parse /proc/uptime %q: %w", f, errParse)
	}
	return v, nil
}

// parseFileNr parses /proc/sys/fs/file-nr: "allocated unused maximum".
func parseFileNr(data []byte) (allocated, maximum uint64, err error) {
	var v [3]uint64
	n, err := uints(trimNL(data), v[:])
	if err != nil || n != 3 {
		return 0, 0, fmt.Errorf("parse /proc/sys/fs/file-nr %q: %w", data, errParse)
	}
	return v[0], v[2], nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
