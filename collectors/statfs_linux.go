//go:build linux

package collectors

import "golang.org/x/sys/unix"

func statfs(path string) (fsStat, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		return fsStat{}, err
	}
	bs := uint64(s.Frsize)
	if bs == 0 {
		bs = uint64(s.Bsize)
	}
	return fsStat{size: s.Blocks * bs, free: s.Bfree * bs, avail: s.Bavail * bs}, nil
}
