//go:build !unix

package collectors

import "os/exec"

// setProcessGroup: without process groups, cancellation kills the command
// only (exec.CommandContext's default).
func setProcessGroup(*exec.Cmd) {}
