// Package memlimit sets the Go runtime's soft memory limit from a flag.
//
// pgjet's processes hold little in steady state, but one very large row
// (a value of tens of MB) briefly needs a few times its size: without a
// limit, the garbage collector lets the heap grow to twice that before it
// runs. A soft limit makes it collect sooner instead; it never makes an
// allocation fail (above the limit the runtime caps GC work at about half
// the CPU and lets the heap grow).
package memlimit

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Set applies limit (bytes; 0 for none) unless the environment sets
// GOMEMLIMIT, which wins. It returns the limit in effect, negative when
// there is none.
func Set(limit int64) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1) // reads the current value
	}
	if limit <= 0 {
		return -1
	}
	debug.SetMemoryLimit(limit)
	return limit
}

// Size is a byte count as a flag value (128MiB, 1GiB, 0). Negative is
// "auto": the program picks.
type Size int64

func (s *Size) Set(v string) error {
	if strings.TrimSpace(v) == "auto" {
		*s = -1
		return nil
	}
	n, err := Parse(v)
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

func (s *Size) String() string {
	switch {
	case s == nil || *s < 0:
		return "auto"
	case *s > 0 && *s%(1<<20) == 0:
		return strconv.FormatInt(int64(*s>>20), 10) + "MiB"
	}
	return strconv.FormatInt(int64(*s), 10)
}

// Parse reads a size such as 128MiB, 1GiB, 200MB or 4096 (bytes).
func Parse(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q: use e.g. 128MiB, 1GiB or 0 for none", s)
	}
	return n * mult, nil
}
