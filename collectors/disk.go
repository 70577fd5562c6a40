package collectors

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"livedash/config"
)

// diskStat is one /proc/diskstats line (the fields livedash reports).
type diskStat struct {
	device                      string
	reads, readSectors          uint64
	writes, writeSectors        uint64
	inProgress, ioTicksMillisec uint64
}

// sectorBytes: the kernel counts /proc/diskstats sectors in units of 512
// bytes whatever the device's own sector size.
const sectorBytes = 512

// parseDiskstats parses /proc/diskstats. dst is reused.
func parseDiskstats(data []byte, dst []diskStat) ([]diskStat, error) {
	dst = dst[:0]
	var v [11]uint64
	err := lines(data, func(line []byte) error {
		_, rest := nextField(line) // major
		_, rest = nextField(rest)  // minor
		name, rest := nextField(rest)
		if len(name) == 0 {
			return nil
		}
		n, err := uints(rest, v[:])
		if err != nil {
			return fmt.Errorf("parse /proc/diskstats %s: %w", name, err)
		}
		if n < 11 {
			return fmt.Errorf("parse /proc/diskstats %s: %w: %d columns", name, errParse, n)
		}
		dst = append(dst, diskStat{
			device: string(name),
			reads:  v[0], readSectors: v[2],
			writes: v[4], writeSectors: v[6],
			inProgress: v[8], ioTicksMillisec: v[9],
		})
		return nil
	})
	return dst, err
}

// diskCollector reports per device: disk_read_bytes_per_second,
// disk_written_bytes_per_second, disk_reads_completed_per_second,
// disk_writes_completed_per_second, disk_io_time_ratio (share of time the
// device was busy; node_exporter's rate(node_disk_io_time_seconds_total))
// and disk_io_in_progress (node_disk_io_now).
type diskCollector struct {
	root    string
	exclude *regexp.Regexp
	buf     []diskStat
	rates   *rates
	labels  labelSet
}

func newDisk(c *config.Collectors, e env) ([]*job, error) {
	re, err := regexp.Compile(c.Disk.DeviceExclude)
	if err != nil {
		return nil, fmt.Errorf("device_exclude: %w", err)
	}
	return []*job{{c: &diskCollector{root: e.opts.ProcRoot, exclude: re, rates: newRates()}}}, nil
}

func (c *diskCollector) collect(_ context.Context, now time.Time) ([]Sample, error) {
	data, err := readProc(c.root, "diskstats")
	if err != nil {
		return nil, err
	}
	c.buf, err = parseDiskstats(data, c.buf)
	if err != nil {
		return nil, err
	}
	return c.samples(c.buf, now), nil
}

func (c *diskCollector) samples(stats []diskStat, now time.Time) []Sample {
	c.rates.begin()
	defer c.rates.end()
	out := make([]Sample, 0, len(stats)*6)
	for _, d := range stats {
		if c.exclude.MatchString(d.device) {
			continue
		}
		l := c.labels.get("device", d.device, "", "", "", "")
		out = append(out, Sample{Name: "disk_io_in_progress", Labels: l, Value: float64(d.inProgress)})
		for _, ctr := range [...]struct {
			name string
			v    float64
		}{
			{"disk_read_bytes_per_second", float64(d.readSectors) * sectorBytes},
			{"disk_written_bytes_per_second", float64(d.writeSectors) * sectorBytes},
			{"disk_reads_completed_per_second", float64(d.reads)},
			{"disk_writes_completed_per_second", float64(d.writes)},
			{"disk_io_time_ratio", float64(d.ioTicksMillisec) / 1000},
		} {
			if r, ok := c.rates.rate(seriesKey{name: ctr.name, a: d.device}, ctr.v, now); ok {
				out = append(out, Sample{Name: ctr.name, Labels: l, Value: r})
			}
		}
	}
	return out
}
