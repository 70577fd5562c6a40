package bolt

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockHolder names the process holding a lock on path, from /proc/locks, as
// " (held by pid N, <comm>)"; it returns "" where that cannot be found out.
func lockHolder(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return ""
	}
	defer f.Close()
	want := ":" + strconv.FormatUint(st.Ino, 10)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.HasSuffix(fields[5], want) {
			continue
		}
		pid := fields[4]
		if pid == strconv.Itoa(os.Getpid()) {
			return " (held by this process)"
		}
		comm, _ := os.ReadFile("/proc/" + pid + "/comm")
		return fmt.Sprintf(" (held by pid %s, %s)", pid, strings.TrimSpace(string(comm)))
	}
	return ""
}
