package value

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgjet/pgjet/shared/wire"
)

func placeholderBytes(p string) ([]byte, error) {
	if len(p) >= 4 && p[:4] == "hex:" {
		b, err := hex.DecodeString(p[4:])
		if err != nil {
			return nil, fmt.Errorf("%q: not hex after hex:", p)
		}
		return b, nil
	}
	return []byte(p), nil
}

// appendPlaceholder renders an unchanged TOAST value as Debezium does:
// the placeholder string, its bytes for bytea, a map from it to itself for
// hstore, or a one-element (or byte-per-element, for integer arrays) list
// for the arrays Debezium knows.
func (e *Debezium) appendPlaceholder(b []byte, col *wire.Column) []byte {
	t := e.typeOf(col)
	if !t.array {
		switch {
		case t.kind == kBytea && e.opt.Binary == BinaryBytes:
			return e.appendBinaryMode(b, e.ph)
		case t.kind == kHstore:
			return e.appendHstorePlaceholder(b)
		}
		return AppendString(b, e.ph)
	}
	oid := e.d.resolve(col.TypeOID, &col.Type).oid
	switch oid {
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.JSONOID, pgtype.JSONBOID:
		b = append(b, '[')
		b = AppendString(b, e.ph)
		return append(b, ']')
	case pgtype.ByteaOID:
		b = append(b, '[')
		if e.opt.Binary == BinaryBytes {
			b = e.appendBinaryMode(b, e.ph)
		} else {
			b = AppendString(b, e.ph)
		}
		return append(b, ']')
	case pgtype.Int4OID, pgtype.DateOID, pgtype.Int8OID:
		b = append(b, '[')
		for i, c := range e.ph {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(int8(c)), 10)
		}
		return append(b, ']')
	case pgtype.UUIDOID:
		// Java's UUID.nameUUIDFromBytes: an MD5, version 3 name UUID.
		sum := md5.Sum(e.ph)
		sum[6] = sum[6]&0x0f | 0x30
		sum[8] = sum[8]&0x3f | 0x80
		b = append(b, '[')
		b = appendUUID(b, sum[:])
		return append(b, ']')
	}
	return AppendString(b, e.ph)
}
