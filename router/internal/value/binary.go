package value

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"
)

// appendBinary renders a scalar of builtin type oid sent in binary format
// (pgoutput's binary option). Common types are decoded here; the rest are
// decoded by pgtype and rendered from the text pgtype gives back.
func (d *Decoder) appendBinary(b []byte, oid uint32, v []byte) ([]byte, error) {
	switch oid {
	case pgtype.Int2OID:
		if len(v) != 2 {
			return b, badBinary(oid, v)
		}
		return strconv.AppendInt(b, int64(int16(binary.BigEndian.Uint16(v))), 10), nil
	case pgtype.Int4OID:
		if len(v) != 4 {
			return b, badBinary(oid, v)
		}
		return strconv.AppendInt(b, int64(int32(binary.BigEndian.Uint32(v))), 10), nil
	case pgtype.Int8OID:
		if len(v) != 8 {
			return b, badBinary(oid, v)
		}
		return strconv.AppendInt(b, int64(binary.BigEndian.Uint64(v)), 10), nil
	case pgtype.OIDOID:
		if len(v) != 4 {
			return b, badBinary(oid, v)
		}
		return strconv.AppendUint(b, uint64(binary.BigEndian.Uint32(v)), 10), nil
	case pgtype.Float4OID:
		if len(v) != 4 {
			return b, badBinary(oid, v)
		}
		return appendFloat(b, float64(math.Float32frombits(binary.BigEndian.Uint32(v))), 32), nil
	case pgtype.Float8OID:
		if len(v) != 8 {
			return b, badBinary(oid, v)
		}
		return appendFloat(b, math.Float64frombits(binary.BigEndian.Uint64(v)), 64), nil
	case pgtype.BoolOID:
		if len(v) != 1 || v[0] > 1 {
			return b, badBinary(oid, v)
		}
		if v[0] == 1 {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case pgtype.JSONBOID:
		// jsonb_send: a version byte, then the text.
		if len(v) == 0 || v[0] != 1 {
			return b, badBinary(oid, v)
		}
		return d.appendText(b, oid, v[1:])
	case pgtype.DateOID:
		if len(v) != 4 {
			return b, badBinary(oid, v)
		}
		return appendDateBinary(b, int32(binary.BigEndian.Uint32(v))), nil
	case pgtype.TimestampOID, pgtype.TimestamptzOID:
		if len(v) != 8 {
			return b, badBinary(oid, v)
		}
		return appendTimestampBinary(b, oid == pgtype.TimestamptzOID, int64(binary.BigEndian.Uint64(v))), nil
	case pgtype.UUIDOID:
		if len(v) != 16 {
			return b, badBinary(oid, v)
		}
		return appendUUID(b, v), nil
	case pgtype.ByteaOID:
		// As bytea_output=hex prints it, which is what to_jsonb gives.
		b = append(b, `"\\x`...)
		for _, c := range v {
			b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
		}
		return append(b, '"'), nil
	case pgtype.TimeOID:
		if len(v) != 8 || !validClock(int64(binary.BigEndian.Uint64(v))) {
			return b, badBinary(oid, v)
		}
		b = append(b, '"')
		b = appendClock(b, int64(binary.BigEndian.Uint64(v)))
		return append(b, '"'), nil
	case pgtype.TimetzOID:
		// Microseconds since midnight, then the zone in seconds west of UTC.
		if len(v) != 12 || !validClock(int64(binary.BigEndian.Uint64(v))) || !validZone(int32(binary.BigEndian.Uint32(v[8:]))) {
			return b, badBinary(oid, v)
		}
		b = append(b, '"')
		b = appendClock(b, int64(binary.BigEndian.Uint64(v)))
		b = appendZone(b, -int(int32(binary.BigEndian.Uint32(v[8:]))))
		return append(b, '"'), nil
	case pgtype.IntervalOID:
		if len(v) != 16 {
			return b, badBinary(oid, v)
		}
		b = append(b, '"')
		b = appendInterval(b, int64(binary.BigEndian.Uint64(v)), int32(binary.BigEndian.Uint32(v[8:])), int32(binary.BigEndian.Uint32(v[12:])))
		return append(b, '"'), nil
	case pgtype.InetOID, pgtype.CIDROID:
		return appendInet(b, oid, v)
	case pgtype.JSONOID:
		// json_send sends the text itself.
		return d.appendText(b, oid, v)
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.XMLOID, pgtype.UnknownOID:
		// The binary form of text types is their text.
		return AppendString(b, v), nil
	case unknownOID:
		return b, fmt.Errorf("binary value of a %s cannot be decoded", typeName(oid))
	}
	// pgtype's text for some types is not Postgres's; where to_jsonb's form
	// cannot be rebuilt without the server (money depends on lc_monetary,
	// ranges need their elements' Postgres text), fail rather than differ.
	dt, ok := d.m.TypeForOID(oid)
	if !ok || !dt.Codec.FormatSupported(pgtype.BinaryFormatCode) {
		return b, fmt.Errorf("binary value of type %d cannot be decoded", oid)
	}
	switch dt.Codec.(type) {
	case *pgtype.RangeCodec, *pgtype.MultirangeCodec:
		return b, fmt.Errorf("binary value of %s cannot be decoded: use text mode", dt.Name)
	}
	val, err := dt.Codec.DecodeValue(d.m, oid, pgtype.BinaryFormatCode, v)
	if err != nil {
		return b, fmt.Errorf("decode binary %s: %w", dt.Name, err)
	}
	text, err := d.m.Encode(oid, pgtype.TextFormatCode, val, d.scratch[:0])
	if err != nil {
		return b, fmt.Errorf("decode binary %s: %w", dt.Name, err)
	}
	d.scratch = text[:0]
	return d.appendText(b, oid, text)
}

// appendFloat renders a float as the shortest number that reads back as the
// same value, like Postgres with extra_float_digits > 0.
func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

func appendUUID(b []byte, v []byte) []byte {
	b = append(b, '"')
	for i, c := range v {
		switch i {
		case 4, 6, 8, 10:
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return append(b, '"')
}

func badBinary(oid uint32, v []byte) error {
	return fmt.Errorf("invalid binary %s value (%d bytes)", typeName(oid), len(v))
}

// appendClock appends a time of day in microseconds as Postgres prints it:
// HH:MM:SS and the fraction without trailing zeros. Hours may exceed 24 (in
// intervals).
// validClock: a time of day from 00:00:00 to 24:00:00, as Postgres allows.
func validClock(usec int64) bool { return usec >= 0 && usec <= 24*3600*1e6 }

// validZone: Postgres keeps time zone offsets within ±15:59:59.
func validZone(west int32) bool { return west >= -(15*3600+59*60+59) && west <= 15*3600+59*60+59 }

func appendClock(b []byte, usec int64) []byte {
	sec := usec / 1e6
	b = appendPadded(b, int(sec/3600), 2)
	b = append(b, ':')
	b = appendPadded(b, int(sec/60%60), 2)
	b = append(b, ':')
	b = appendPadded(b, int(sec%60), 2)
	return appendFraction(b, int(usec%1e6))
}

// appendFraction appends .ffffff for usec > 0, trailing zeros dropped.
func appendFraction(b []byte, usec int) []byte {
	if usec == 0 {
		return b
	}
	n := 6
	for usec%10 == 0 {
		usec /= 10
		n--
	}
	b = append(b, '.')
	return appendPadded(b, usec, n)
}

// appendZone appends a UTC offset (seconds east) as Postgres does: +HH, then
// :MM and :SS only when not zero.
func appendZone(b []byte, east int) []byte {
	if east < 0 {
		b = append(b, '-')
		east = -east
	} else {
		b = append(b, '+')
	}
	b = appendPadded(b, east/3600, 2)
	if east%3600 != 0 {
		b = append(b, ':')
		b = appendPadded(b, east/60%60, 2)
		if east%60 != 0 {
			b = append(b, ':')
			b = appendPadded(b, east%60, 2)
		}
	}
	return b
}

// appendInterval appends an interval in IntervalStyle postgres, following
// Postgres's EncodeInterval: "1 year 2 mons -3 days +04:05:06.5".
func appendInterval(b []byte, usec int64, days, months int32) []byte {
	zero, before := true, false
	part := func(v int64, unit string) {
		if v == 0 {
			return
		}
		if !zero {
			b = append(b, ' ')
		}
		if before && v > 0 {
			b = append(b, '+')
		}
		b = strconv.AppendInt(b, v, 10)
		b = append(b, ' ')
		b = append(b, unit...)
		if v != 1 {
			b = append(b, 's')
		}
		before = v < 0
		zero = false
	}
	part(int64(months/12), "year")
	part(int64(months%12), "mon")
	part(int64(days), "day")
	if zero || usec != 0 {
		if !zero {
			b = append(b, ' ')
		}
		switch {
		case usec < 0:
			b = append(b, '-')
			usec = -usec
		case before:
			b = append(b, '+')
		}
		b = appendClock(b, usec)
	}
	return b
}

// appendInet renders inet and cidr (inet_send: family, bits, is_cidr, length,
// address) as inet_out does: the prefix length is shown for cidr, and for
// inet only when it does not cover the whole address.
func appendInet(b []byte, oid uint32, v []byte) ([]byte, error) {
	if len(v) < 4 || int(v[3]) != len(v)-4 {
		return b, badBinary(oid, v)
	}
	bits, isCIDR := int(v[1]), v[2] == 1
	var addr netip.Addr
	switch {
	case v[0] == 2 && len(v) == 8: // AF_INET
		addr = netip.AddrFrom4([4]byte(v[4:8]))
	case v[0] == 3 && len(v) == 20: // AF_INET6 as Postgres numbers it
		addr = netip.AddrFrom16([16]byte(v[4:20]))
	default:
		return b, badBinary(oid, v)
	}
	if bits > addr.BitLen() {
		return b, badBinary(oid, v)
	}
	b = append(b, '"')
	b = addr.AppendTo(b)
	if isCIDR || bits != addr.BitLen() {
		b = append(b, '/')
		b = strconv.AppendInt(b, int64(bits), 10)
	}
	return append(b, '"'), nil
}
