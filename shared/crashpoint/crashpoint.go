// Package crashpoint lets fault tests kill a process at a named point, the
// way a power cut or kill -9 would: PGJET_CRASHPOINT=<name> makes the
// process SIGKILL itself the first time it reaches <name>, or the N-th time
// with PGJET_CRASHPOINT_AFTER=N. Unset, a point costs one string compare.
package crashpoint

import (
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
)

var (
	armed = os.Getenv("PGJET_CRASHPOINT")
	after = parseAfter(os.Getenv("PGJET_CRASHPOINT_AFTER"))
	hits  atomic.Int64
)

func parseAfter(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// Armed reports whether the process is set to crash at name, so a caller can
// first make the crash meaningful (e.g. flush a message onto the wire).
func Armed(name string) bool { return armed != "" && armed == name }

// Hit kills the process if it is set to crash at name and this is the hit
// it waits for.
func Hit(name string) {
	if !Armed(name) {
		return
	}
	if hits.Add(1) >= after {
		os.Stderr.WriteString("crashpoint " + name + ": killing the process\n")
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is delivered before this returns in practice
	}
}
