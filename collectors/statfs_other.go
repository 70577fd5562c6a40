//go:build !linux

package collectors

import "errors"

// errUnsupported is returned where the platform lacks a facility.
var errUnsupported = errors.New("collectors: not supported on this platform")

// statfs is Linux-only for now: the filesystem collector reads
// /proc/self/mounts, which other systems do not have.
func statfs(string) (fsStat, error) { return fsStat{}, errUnsupported }
