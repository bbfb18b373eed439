package value

import (
	"encoding/base64"
	"encoding/hex"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"
)

// appendBinaryMode renders bytes per binary.handling.mode; bytes is what
// the JSON converter makes of Connect bytes: base64.
func (e *Debezium) appendBinaryMode(b []byte, raw []byte) []byte {
	b = append(b, '"')
	switch e.opt.Binary {
	case BinaryHex:
		b = hex.AppendEncode(b, raw)
	case BinaryBase64URLSafe:
		b = base64.URLEncoding.AppendEncode(b, raw)
	default:
		b = base64.StdEncoding.AppendEncode(b, raw)
	}
	return append(b, '"')
}

// decodeBytea decodes bytea text output: hex ("\x0102") or escape format.
func decodeBytea(s []byte, dst []byte) ([]byte, bool) {
	if len(s) >= 2 && s[0] == '\\' && s[1] == 'x' {
		h := s[2:]
		if len(h)%2 != 0 {
			return dst, false
		}
		for i := 0; i < len(h); i += 2 {
			hi, ok1 := unhex(h[i])
			lo, ok2 := unhex(h[i+1])
			if !ok1 || !ok2 {
				return dst, false
			}
			dst = append(dst, hi<<4|lo)
		}
		return dst, true
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			dst = append(dst, s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\\' {
			dst = append(dst, '\\')
			i++
			continue
		}
		if i+3 >= len(s) {
			return dst, false
		}
		v := 0
		for k := 1; k <= 3; k++ {
			c := s[i+k]
			if c < '0' || c > '7' {
				return dst, false
			}
			v = v*8 + int(c-'0')
		}
		if v > 255 {
			return dst, false
		}
		dst = append(dst, byte(v))
		i += 3
	}
	return dst, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendBits renders bit strings as Debezium's Bits: bytes, little-endian
// (the last bit is bit 0), as short as the highest set bit allows.
func appendBits(b []byte, s []byte) ([]byte, error) {
	var raw [64]byte
	bs := raw[:0]
	n := len(s)
	for i := n - 1; i >= 0; i-- {
		c := s[i]
		if c != '0' && c != '1' {
			return b, badText(pgtype.BitOID, s)
		}
		bit := n - 1 - i
		if c == '1' {
			for len(bs) <= bit/8 {
				bs = append(bs, 0)
			}
			bs[bit/8] |= 1 << (bit % 8)
		}
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, bs)
	return append(b, '"'), nil
}

// AppendBytes appends raw per binary.handling.mode, as Debezium encodes
// the content of logical decoding messages.
func (e *Debezium) AppendBytes(b []byte, raw []byte) []byte {
	return e.appendBinaryMode(b, raw)
}

// AppendBytesSchema is the schema of AppendBytes's values, left open.
func (e *Debezium) AppendBytesSchema(b []byte, optional bool) []byte {
	b = append(b, `{"type":"`...)
	if e.opt.Binary == BinaryBytes {
		b = append(b, "bytes"...)
	} else {
		b = append(b, "string"...)
	}
	b = append(b, `","optional":`...)
	return strconv.AppendBool(b, optional)
}
