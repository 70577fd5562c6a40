//go:build !linux

package collectors

// statfs is Linux-only for now: the filesystem collector reads
// /proc/self/mounts, which other systems do not have.
func statfs(string) (fsStat, error) { return fsStat{}, errUnsupported }
