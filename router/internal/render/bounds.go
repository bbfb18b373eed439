package render

import "github.com/pgjet/pgjet/shared/wire"

// Bounds limit what a replay renders: the transactions whose commit LSN
// and commit time fall in them (zero: unbounded).
type Bounds struct {
	FromLSN, ToLSN   uint64
	FromTime, ToTime int64 // commit times, microseconds since the epoch
	// LSNSource names the source whose commit LSNs FromLSN and ToLSN are:
	// with either set, only that source's transactions are rendered (LSNs
	// of different databases do not compare).
	LSNSource string
}

// has reports whether tx of src falls in b (always for a nil b).
func (b *Bounds) has(src *wire.Source, tx *wire.Tx) bool {
	if b == nil {
		return true
	}
	if (b.FromLSN != 0 || b.ToLSN != 0) && b.LSNSource != "" && src.Name != b.LSNSource {
		return false
	}
	return (b.FromLSN == 0 || tx.CommitLSN >= b.FromLSN) && (b.ToLSN == 0 || tx.CommitLSN <= b.ToLSN) &&
		(b.FromTime == 0 || tx.CommitTime >= b.FromTime) && (b.ToTime == 0 || tx.CommitTime <= b.ToTime)
}
