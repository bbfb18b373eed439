package backfill

import (
	"fmt"
	"strconv"
	"strings"
)

// pgSnapshot is a transaction snapshot as pg_current_snapshot() gives it:
// which transactions a chunk's read saw. Transaction ids are compared in
// their 32-bit form, the one pgoutput sends, modulo 2^32 as Postgres does
// (the transactions in question are recent).
type pgSnapshot struct {
	xmin, xmax uint32
	xip        map[uint32]bool
}

// parseSnapshot reads "xmin:xmax:xip,xip,...".
func parseSnapshot(s string) (*pgSnapshot, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("snapshot %q: want xmin:xmax:xip", s)
	}
	xmin, err1 := strconv.ParseUint(parts[0], 10, 64)
	xmax, err2 := strconv.ParseUint(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("snapshot %q: bad xmin or xmax", s)
	}
	snap := &pgSnapshot{xmin: uint32(xmin), xmax: uint32(xmax), xip: map[uint32]bool{}}
	if parts[2] != "" {
		for _, x := range strings.Split(parts[2], ",") {
			v, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("snapshot %q: bad xip %q", s, x)
			}
			snap.xip[uint32(v)] = true
		}
	}
	return snap, nil
}

// visible reports whether the snapshot sees the work of transaction xid,
// which committed (the stream carries only committed transactions).
func (s *pgSnapshot) visible(xid uint32) bool {
	if precedes(xid, s.xmin) {
		return true
	}
	if !precedes(xid, s.xmax) {
		return false // began after the snapshot
	}
	return !s.xip[xid]
}

// precedes is TransactionIdPrecedes for normal transaction ids.
func precedes(a, b uint32) bool { return int32(a-b) < 0 }
