package pgoutput

import (
	"encoding/binary"
	"fmt"
)

// checkBounds verifies the counts inside messages that pglogrepl parses
// before it parses them: its parsers allocate whatever a count field says,
// so a corrupt message could ask for gigabytes. (Row messages never reach
// pglogrepl: readRow checks them as it decodes.)
func checkBounds(data []byte) error {
	b := data[1:]
	if data[0] == 'T' {
		if len(b) < 5 {
			return errShort
		}
		if n := binary.BigEndian.Uint32(b); uint64(len(b)-5) < 4*uint64(n) {
			return fmt.Errorf("truncate of %d relations in %d bytes", n, len(b))
		}
	}
	return nil
}
