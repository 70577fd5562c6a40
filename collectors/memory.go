package collectors

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"livedash/config"
)

// meminfo holds the /proc/meminfo fields livedash reports, in bytes.
type meminfo struct {
	total, free, available, buffers, cached, swapTotal, swapFree uint64
	hasTotal, hasAvailable, hasFree                              bool
}

// parseMeminfo parses /proc/meminfo ("Key:   123 kB" lines).
func parseMeminfo(data []byte) (meminfo, error) {
	var m meminfo
	err := lines(data, func(line []byte) error {
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			return nil
		}
		key := line[:i]
		f, rest := nextField(line[i+1:])
		unit, _ := nextField(rest)
		var p *uint64
		switch string(key) {
		case "MemTotal":
			p, m.hasTotal = &m.total, true
		case "MemFree":
			p, m.hasFree = &m.free, true
		case "MemAvailable":
			p, m.hasAvailable = &m.available, true
		case "Buffers":
			p = &m.buffers
		case "Cached":
			p = &m.cached
		case "SwapTotal":
			p = &m.swapTotal
		case "SwapFree":
			p = &m.swapFree
		default:
			return nil
		}
		v, err := parseUint(f)
		if err != nil {
			return fmt.Errorf("parse /proc/meminfo %s: %w", key, err)
		}
		if string(unit) == "kB" {
			v *= 1024
		}
		*p = v
		return nil
	})
	if err != nil {
		return m, err
	}
	if !m.hasTotal || !m.hasFree {
		return m, fmt.Errorf("parse /proc/meminfo: %w: MemTotal or MemFree missing", errParse)
	}
	if !m.hasAvailable {
		// Kernels before 3.14 lack MemAvailable; this is their estimate.
		m.available = min(m.free+m.buffers+m.cached, m.total)
	}
	return m, nil
}

// memoryCollector reports memory_* gauges in bytes. memory_used_bytes is
// total - available (what applications cannot get back), as in free(1)'s
// "used" on recent procps.
type memoryCollector struct{ root string }

func newMemory(_ *config.Collectors, e env) ([]*job, error) {
	return []*job{{c: &memoryCollector{root: e.opts.ProcRoot}}}, nil
}

func (c *memoryCollector) collect(context.Context, time.Time) ([]Sample, error) {
	data, err := readProc(c.root, "meminfo")
	if err != nil {
		return nil, err
	}
	m, err := parseMeminfo(data)
	if err != nil {
		return nil, err
	}
	return memorySamples(m), nil
}

func memorySamples(m meminfo) []Sample {
	used := m.total - min(m.available, m.total)
	swapUsed := m.swapTotal - min(m.swapFree, m.swapTotal)
	return []Sample{
		{Name: "memory_total_bytes", Value: float64(m.total)},
		{Name: "memory_free_bytes", Value: float64(m.free)},
		{Name: "memory_available_bytes", Value: float64(m.available)},
		{Name: "memory_used_bytes", Value: float64(used)},
		{Name: "memory_buffers_bytes", Value: float64(m.buffers)},
		{Name: "memory_cached_bytes", Value: float64(m.cached)},
		{Name: "memory_swap_total_bytes", Value: float64(m.swapTotal)},
		{Name: "memory_swap_free_bytes", Value: float64(m.swapFree)},
		{Name: "memory_swap_used_bytes", Value: float64(swapUsed)},
	}
}
