package pgoutput

import (
	"encoding/binary"
	"fmt"
)

// checkBounds verifies the lengths and counts inside row and truncate
// messages before pglogrepl parses them: its parsers allocate whatever a
// count or length field says, so a corrupt message could ask for gigabytes.
func checkBounds(data []byte) error {
	b := data[1:]
	switch data[0] {
	case 'I':
		return checkTuples(b, 4, 1)
	case 'U':
		if len(b) < 5 {
			return errShort
		}
		n := 1
		if b[4] == 'K' || b[4] == 'O' {
			n = 2
		}
		return checkTuples(b, 4, n)
	case 'D':
		return checkTuples(b, 4, 1)
	case 'T':
		if len(b) < 5 {
			return errShort
		}
		if n := binary.BigEndian.Uint32(b); uint64(len(b)-5) < 4*uint64(n) {
			return fmt.Errorf("truncate of %d relations in %d bytes", n, len(b))
		}
	}
	return nil
}

var errShort = fmt.Errorf("message too short")

// checkTuples walks n tuples (each after a one-byte tuple type) starting at
// off and checks every value length against what is left.
func checkTuples(b []byte, off, n int) error {
	for t := 0; t < n; t++ {
		if len(b) < off+3 {
			return errShort
		}
		cols := int(binary.BigEndian.Uint16(b[off+1:]))
		off += 3
		for c := 0; c < cols; c++ {
			if off >= len(b) {
				return errShort
			}
			kind := b[off]
			off++
			if kind == 't' || kind == 'b' {
				if len(b) < off+4 {
					return errShort
				}
				l := uint64(binary.BigEndian.Uint32(b[off:]))
				off += 4
				if uint64(len(b)-off) < l {
					return fmt.Errorf("value of %d bytes with %d left", l, len(b)-off)
				}
				off += int(l)
			}
		}
	}
	return nil
}
