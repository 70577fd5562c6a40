package collectors

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"livedash/config"
)

// loadavg is /proc/loadavg: "0.52 0.58 0.59 2/1234 56789".
type loadavg struct {
	load1, load5, load15 float64
	runnable, tasks      uint64
}

func parseLoadavg(data []byte) (loadavg, error) {
	var l loadavg
	rest := data
	var f []byte
	for i, dst := range []*float64{&l.load1, &l.load5, &l.load15} {
		f, rest = nextField(rest)
		v, err := strconv.ParseFloat(string(f), 64)
		if err != nil || v < 0 {
			return l, fmt.Errorf("parse /proc/loadavg field %d %q: %w", i+1, f, errParse)
		}
		*dst = v
	}
	f, _ = nextField(rest)
	r, t, ok := bytes.Cut(f, []byte("/"))
	if !ok {
		return l, fmt.Errorf("parse /proc/loadavg tasks %q: %w", f, errParse)
	}
	var err error
	if l.runnable, err = parseUint(r); err != nil {
		return l, fmt.Errorf("parse /proc/loadavg: %w", err)
	}
	if l.tasks, err = parseUint(bytes.TrimSpace(t)); err != nil {
		return l, fmt.Errorf("parse /proc/loadavg: %w", err)
	}
	return l, nil
}

// loadCollector reports load1, load5, load15 (node_exporter's names) and
// load_runnable_tasks / load_tasks (scheduling entities runnable / existing).
type loadCollector struct{ root string }

func newLoad(_ *config.Collectors, e env) ([]*job, error) {
	return []*job{{c: &loadCollector{root: e.opts.ProcRoot}}}, nil
}

func (c *loadCollector) collect(context.Context, time.Time) ([]Sample, error) {
	data, err := readProc(c.root, "loadavg")
	if err != nil {
		return nil, err
	}
	l, err := parseLoadavg(data)
	if err != nil {
		return nil, err
	}
	return []Sample{
		{Name: "load1", Value: l.load1},
		{Name: "load5", Value: l.load5},
		{Name: "load15", Value: l.load15},
		{Name: "load_runnable_tasks", Value: float64(l.runnable)},
		{Name: "load_tasks", Value: float64(l.tasks)},
	}, nil
}
