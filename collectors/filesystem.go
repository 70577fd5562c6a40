package collectors

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"livedash/config"
)

// mount is one line of /proc/self/mounts.
type mount struct {
	device, mountPoint, fsType string
}

// parseMounts parses /proc/self/mounts ("dev mountpoint fstype options 0 0",
// with space, tab, newline and backslash written as octal escapes). A mount
// point listed more than once (over-mounts) is kept once, as its last entry.
func parseMounts(data []byte) ([]mount, error) {
	var out []mount
	index := map[string]int{}
	err := lines(data, func(line []byte) error {
		dev, rest := nextField(line)
		mp, rest := nextField(rest)
		fs, _ := nextField(rest)
		if len(dev) == 0 {
			return nil
		}
		if len(fs) == 0 {
			return fmt.Errorf("parse mounts line %q: %w", line, errParse)
		}
		m := mount{device: unescapeOctal(dev), mountPoint: unescapeOctal(mp), fsType: string(fs)}
		if i, ok := index[m.mountPoint]; ok {
			out[i] = m
			return nil
		}
		index[m.mountPoint] = len(out)
		out = append(out, m)
		return nil
	})
	return out, err
}

// unescapeOctal decodes the kernel's \ooo escapes in mount fields.
func unescapeOctal(b []byte) string {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+3 < len(b) && isOctal(b[i+1]) && isOctal(b[i+2]) && isOctal(b[i+3]) {
			out = append(out, (b[i+1]-'0')<<6|(b[i+2]-'0')<<3|(b[i+3]-'0'))
			i += 3
			continue
		}
		out = append(out, b[i])
	}
	return string(out)
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// fsStat is what statfs(2) reports about one filesystem, in bytes.
type fsStat struct {
	size, free, avail uint64
}

// filesystemCollector reports per mount point filesystem_size_bytes,
// filesystem_free_bytes (free to root), filesystem_avail_bytes (free to
// users), filesystem_used_bytes and filesystem_used_ratio (used / (used +
// avail), as df computes Use%), labelled {device, mountpoint, fstype}.
//
// statfs on a hung network filesystem can block; the scheduler's timeout
// reports that, and this job alone waits for the call to return.
type filesystemCollector struct {
	root         string
	fsExclude    *regexp.Regexp
	mountExclude *regexp.Regexp
	statfs       func(path string) (fsStat, error)
	labels       labelSet
	failed       map[string]bool // mount points whose statfs failed last time (logged once)
	log          interface{ Warn(string, ...any) }
}

func newFilesystem(c *config.Collectors, e env) ([]*job, error) {
	fsRe, err := regexp.Compile(c.Filesystem.FSTypeExclude)
	if err != nil {
		return nil, fmt.Errorf("fs_type_exclude: %w", err)
	}
	mpRe, err := regexp.Compile(c.Filesystem.MountPointExclude)
	if err != nil {
		return nil, fmt.Errorf("mount_point_exclude: %w", err)
	}
	return []*job{{c: &filesystemCollector{
		root: e.opts.ProcRoot, fsExclude: fsRe, mountExclude: mpRe,
		statfs: statfs, failed: map[string]bool{}, log: e.log,
	}}}, nil
}

func (c *filesystemCollector) collect(ctx context.Context, _ time.Time) ([]Sample, error) {
	data, err := readProc(c.root, "self/mounts")
	if err != nil {
		return nil, err
	}
	mounts, err := parseMounts(data)
	if err != nil {
		return nil, err
	}
	out := make([]Sample, 0, 16)
	for _, m := range mounts {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		if c.fsExclude.MatchString(m.fsType) || c.mountExclude.MatchString(m.mountPoint) {
			continue
		}
		st, err := c.statfs(m.mountPoint)
		if err != nil {
			// Permission denied on a container's mount and the like: skip
			// the mount, do not fail the collector.
			if !c.failed[m.mountPoint] {
				c.failed[m.mountPoint] = true
				c.log.Warn("statfs failed; mount skipped", "mountpoint", m.mountPoint, "err", err)
			}
			continue
		}
		delete(c.failed, m.mountPoint)
		out = fsSamples(out, c.labels.get("device", m.device, "mountpoint", m.mountPoint, "fstype", m.fsType), st)
	}
	return out, nil
}

func fsSamples(out []Sample, l map[string]string, st fsStat) []Sample {
	if st.size == 0 {
		return out
	}
	used := st.size - min(st.free, st.size)
	out = append(out,
		Sample{Name: "filesystem_size_bytes", Labels: l, Value: float64(st.size)},
		Sample{Name: "filesystem_free_bytes", Labels: l, Value: float64(st.free)},
		Sample{Name: "filesystem_avail_bytes", Labels: l, Value: float64(st.avail)},
		Sample{Name: "filesystem_used_bytes", Labels: l, Value: float64(used)},
	)
	if used+st.avail > 0 {
		out = append(out, Sample{Name: "filesystem_used_ratio", Labels: l, Value: float64(used) / float64(used+st.avail)})
	}
	return out
}
