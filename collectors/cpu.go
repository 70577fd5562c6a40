package collectors

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"livedash/config"
)

// cpuModes are the /proc/stat columns reported, in file order. guest and
// guest_nice are already included in user and nice by the kernel.
var cpuModes = [...]string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}

const nModes = len(cpuModes)

// cpuTimes is one cpu line of /proc/stat in USER_HZ ticks; id -1 is the
// aggregate "cpu" line.
type cpuTimes struct {
	id int
	t  [nModes]uint64
}

// procStat is the part of /proc/stat livedash reports.
type procStat struct {
	cpus                   []cpuTimes // aggregate first, when present
	ctxt, forks, intr      uint64
	running, blocked       uint64
	bootTime               uint64
	hasCtxt, hasForks      bool
	hasRunning, hasBlocked bool
}

// parseStat parses /proc/stat. dst's cpu slice is reused.
func parseStat(data []byte, dst *procStat) error {
	cpus := dst.cpus[:0]
	*dst = procStat{}
	var vals [nModes]uint64
	err := lines(data, func(line []byte) error {
		key, rest := nextField(line)
		switch {
		case bytes.HasPrefix(key, []byte("cpu")):
			id := -1
			if len(key) > 3 {
				n, err := parseUint(key[3:])
				if err != nil {
					return fmt.Errorf("parse /proc/stat %q: %w", key, err)
				}
				id = int(n)
			}
			n, err := uints(rest, vals[:])
			if err != nil {
				return fmt.Errorf("parse /proc/stat %s: %w", key, err)
			}
			if n < 4 {
				return fmt.Errorf("parse /proc/stat %s: %w: %d columns", key, errParse, n)
			}
			c := cpuTimes{id: id}
			copy(c.t[:n], vals[:n])
			cpus = append(cpus, c)
		case string(key) == "ctxt":
			dst.ctxt, dst.hasCtxt = firstUint(rest)
		case string(key) == "processes":
			dst.forks, dst.hasForks = firstUint(rest)
		case string(key) == "intr":
			dst.intr, _ = firstUint(rest)
		case string(key) == "procs_running":
			dst.running, dst.hasRunning = firstUint(rest)
		case string(key) == "procs_blocked":
			dst.blocked, dst.hasBlocked = firstUint(rest)
		case string(key) == "btime":
			dst.bootTime, _ = firstUint(rest)
		}
		return nil
	})
	dst.cpus = cpus
	if err != nil {
		return err
	}
	if len(cpus) == 0 {
		return fmt.Errorf("parse /proc/stat: %w: no cpu lines", errParse)
	}
	return nil
}

func firstUint(b []byte) (uint64, bool) {
	f, _ := nextField(b)
	v, err := parseUint(f)
	return v, err == nil
}

// cpuCollector reports cpu_usage_ratio{cpu,mode}: the share of each mode in
// the time elapsed since the previous tick, for cpu="total" and, with
// per_cpu, every core ("0", "1", ...). Ratios of the same cpu sum to 1.
type cpuCollector struct {
	root   string
	perCPU bool
	stat   procStat
	prev   map[int][nModes]uint64 // by cpu id; -1 = total
	names  map[int]string
	labels labelSet
}

func newCPU(c *config.Collectors, e env) ([]*job, error) {
	return []*job{{c: &cpuCollector{root: e.opts.ProcRoot, perCPU: c.CPU.PerCPU}}}, nil
}

func (c *cpuCollector) collect(_ context.Context, _ time.Time) ([]Sample, error) {
	data, err := readProc(c.root, "stat")
	if err != nil {
		return nil, err
	}
	if err := parseStat(data, &c.stat); err != nil {
		return nil, err
	}
	return c.samples(c.stat.cpus), nil
}

// samples turns cumulative cpu times into ratios against the previous call.
// A cpu seen for the first time, or whose total went backwards (reset,
// hotplug), yields nothing this tick.
func (c *cpuCollector) samples(cpus []cpuTimes) []Sample {
	if c.prev == nil {
		c.prev = map[int][nModes]uint64{}
		c.names = map[int]string{}
	}
	var out []Sample
	for _, cur := range cpus {
		if cur.id >= 0 && !c.perCPU {
			continue
		}
		prev, ok := c.prev[cur.id]
		c.prev[cur.id] = cur.t
		if !ok {
			continue
		}
		// A real reset (reboot, hotplug) lowers the sum of all modes. A
		// single mode going backwards while the sum grows is a known kernel
		// quirk (iowait on idle cpus): that mode counts as 0 this tick.
		var sumPrev, sumCur uint64
		for i := range cur.t {
			sumPrev += prev[i]
			sumCur += cur.t[i]
		}
		if sumCur <= sumPrev {
			continue
		}
		var d [nModes]float64
		var total float64
		for i := range cur.t {
			if cur.t[i] > prev[i] {
				d[i] = float64(cur.t[i] - prev[i])
				total += d[i]
			}
		}
		if total == 0 {
			continue
		}
		name := c.cpuName(cur.id)
		if out == nil {
			out = make([]Sample, 0, len(cpus)*nModes)
		}
		for i, mode := range cpuModes {
			out = append(out, Sample{
				Name:   "cpu_usage_ratio",
				Labels: c.labels.get("cpu", name, "mode", mode, "", ""),
				Value:  d[i] / total,
			})
		}
	}
	return out
}

func (c *cpuCollector) cpuName(id int) string {
	if n, ok := c.names[id]; ok {
		return n
	}
	n := "total"
	if id >= 0 {
		n = strconv.Itoa(id)
	}
	c.names[id] = n
	return n
}
