package value

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/big"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"
)

// appendJavaFloat renders f as Java's Float.toString or Double.toString
// does, which the JSON converter writes: the same shortest digits as Go,
// laid out as "1.0", "0.001", "1.0E7" or "1.0E-4". NaN and the infinities
// are strings, as Jackson quotes them.
func appendJavaFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	if f == 0 {
		if math.Signbit(f) {
			return append(b, "-0.0"...)
		}
		return append(b, "0.0"...)
	}
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], f, 'e', -1, bits) // -d.ddde±XX
	neg := s[0] == '-'
	if neg {
		s = s[1:]
		b = append(b, '-')
	}
	ePos := 0
	for ePos < len(s) && s[ePos] != 'e' {
		ePos++
	}
	exp, _ := strconv.Atoi(string(s[ePos+1:]))
	var digits [24]byte
	nd := 0
	for _, c := range s[:ePos] {
		if c != '.' {
			digits[nd] = c
			nd++
		}
	}
	ds := digits[:nd]
	abs := math.Abs(f)
	if abs >= 1e-3 && abs < 1e7 {
		if exp >= 0 {
			intLen := exp + 1
			for i := range intLen {
				if i < len(ds) {
					b = append(b, ds[i])
				} else {
					b = append(b, '0')
				}
			}
			b = append(b, '.')
			if intLen < len(ds) {
				b = append(b, ds[intLen:]...)
			} else {
				b = append(b, '0')
			}
			return b
		}
		b = append(b, "0."...)
		for range -exp - 1 {
			b = append(b, '0')
		}
		return append(b, ds...)
	}
	b = append(b, ds[0], '.')
	if len(ds) > 1 {
		b = append(b, ds[1:]...)
	} else {
		b = append(b, '0')
	}
	b = append(b, 'E')
	return strconv.AppendInt(b, int64(exp), 10)
}

// decimalText is a decimal number split as Postgres prints numeric:
// optional '-', digits, optional '.' and digits (no exponent).
type decimalText struct {
	neg        bool
	int, frac  []byte
	nan, inf   bool // inf with neg for -Infinity
	hadDecimal bool
}

func parseDecimalText(s []byte) (d decimalText, ok bool) {
	switch string(s) {
	case "NaN":
		return decimalText{nan: true}, true
	case "Infinity":
		return decimalText{inf: true}, true
	case "-Infinity":
		return decimalText{inf: true, neg: true}, true
	}
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		d.neg = s[i] == '-'
		i++
	}
	j := skipDigits(s, i)
	d.int = s[i:j]
	if j < len(s) && s[j] == '.' {
		d.hadDecimal = true
		k := skipDigits(s, j+1)
		d.frac = s[j+1 : k]
		j = k
	}
	if j != len(s) || len(d.int)+len(d.frac) == 0 {
		return d, false
	}
	return d, true
}

// appendNumeric renders numeric per decimal.handling.mode. Precise is a
// Connect Decimal (base64 of the unscaled two's complement, big-endian)
// for numeric(p,s), and Debezium's VariableScaleDecimal struct for numeric
// without a modifier. NaN and the infinities exist only as strings and
// doubles: precise mode fails on them, as Debezium does.
func (e *Debezium) appendNumeric(b []byte, t *dbzType, s []byte) ([]byte, error) {
	d, ok := parseDecimalText(s)
	if !ok {
		return b, badText(pgtype.NumericOID, s)
	}
	switch e.opt.Decimal {
	case DecimalString:
		switch {
		case d.nan:
			return append(b, `"NAN"`...), nil
		case d.inf && d.neg:
			return append(b, `"NEGATIVE_INFINITY"`...), nil
		case d.inf:
			return append(b, `"POSITIVE_INFINITY"`...), nil
		}
		if !t.variable && t.scale > len(d.frac) {
			return e.appendScaledString(b, d, t.scale), nil
		}
		return AppendString(b, s), nil
	case DecimalDouble:
		f, err := strconv.ParseFloat(string(s), 64)
		if err != nil && !math.IsInf(f, 0) {
			return b, badText(pgtype.NumericOID, s)
		}
		return appendJavaFloat(b, f, 64), nil
	}
	if d.nan || d.inf {
		return b, fmt.Errorf("numeric %s has no precise Debezium encoding: set decimal_handling_mode to string or double", s)
	}
	if t.variable {
		// stripTrailingZeros, then no negative scale.
		frac := d.frac
		for len(frac) > 0 && frac[len(frac)-1] == '0' {
			frac = frac[:len(frac)-1]
		}
		b = append(b, `{"scale":`...)
		b = strconv.AppendInt(b, int64(len(frac)), 10)
		b = append(b, `,"value":"`...)
		b = e.appendUnscaled(b, d.neg, d.int, frac, 0)
		return append(b, `"}`...), nil
	}
	if len(d.frac) > t.scale && t.scale >= 0 {
		return b, fmt.Errorf("numeric %s has more than the column's %d decimals", s, t.scale)
	}
	b = append(b, '"')
	b = e.appendUnscaled(b, d.neg, d.int, d.frac, t.scale)
	return append(b, '"'), nil
}

func (e *Debezium) appendScaledString(b []byte, d decimalText, scale int) []byte {
	b = append(b, '"')
	if d.neg {
		b = append(b, '-')
	}
	if len(d.int) == 0 {
		b = append(b, '0')
	}
	b = append(b, d.int...)
	b = append(b, '.')
	b = append(b, d.frac...)
	for range scale - len(d.frac) {
		b = append(b, '0')
	}
	return append(b, '"')
}

// appendUnscaled appends base64 of the unscaled value int.frac at scale
// (frac padded with zeros to it; a negative scale drops integer zeros),
// as Java's BigInteger.toByteArray: the shortest two's complement,
// big-endian.
func (e *Debezium) appendUnscaled(b []byte, neg bool, intPart, frac []byte, scale int) []byte {
	digits := e.tmp[:0]
	digits = append(digits, intPart...)
	digits = append(digits, frac...)
	for i := len(frac); i < scale; i++ {
		digits = append(digits, '0')
	}
	if scale < 0 {
		cut := len(digits) + scale
		if cut < 0 {
			cut = 0
		}
		digits = digits[:cut]
	}
	e.tmp = digits
	var raw [16]byte
	var bs []byte
	if len(digits) <= 18 {
		var v int64
		for _, c := range digits {
			v = v*10 + int64(c-'0')
		}
		if neg {
			v = -v
		}
		bs = twosComplement64(raw[:0], v)
	} else {
		e.big.SetString(string(digits), 10)
		if neg {
			e.big.Neg(&e.big)
		}
		bs = twosComplementBig(&e.big)
	}
	return base64.StdEncoding.AppendEncode(b, bs)
}

func twosComplement64(b []byte, v int64) []byte {
	n := 8
	for n > 1 {
		top := byte(v >> (8*(n-1) - 0))
		next := byte(v >> (8 * (n - 2)))
		if (top == 0 && next&0x80 == 0) || (top == 0xff && next&0x80 != 0) {
			n--
			continue
		}
		break
	}
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func twosComplementBig(x *big.Int) []byte {
	if x.Sign() >= 0 {
		bs := x.Bytes()
		if len(bs) == 0 || bs[0]&0x80 != 0 {
			bs = append([]byte{0}, bs...)
		}
		return bs
	}
	// -x-1 >= 0; its bytes inverted are x's two's complement.
	y := new(big.Int).Neg(x)
	y.Sub(y, big.NewInt(1))
	bs := y.Bytes()
	if len(bs) == 0 || bs[0]&0x80 != 0 {
		bs = append([]byte{0}, bs...)
	}
	for i := range bs {
		bs[i] = ^bs[i]
	}
	return bs
}

// appendMoney renders money text ("$1,234.56", "-$1.00") as Debezium's
// PostgresMoney reads it: sign, then currency symbol and separators gone.
func (e *Debezium) appendMoney(b []byte, s []byte) ([]byte, error) {
	digits := e.tmp[:0]
	neg := false
	i, end := 0, len(s)
	if end > 0 && s[0] == '-' {
		neg = true
		i++
	}
	if i < end && s[i] == '(' && s[end-1] == ')' {
		neg = true
		i++
		end--
	}
	for i < end && (s[i] < '0' || s[i] > '9') && s[i] != '.' {
		i++ // the currency symbol, of any length in any encoding
	}
	if neg {
		digits = append(digits, '-')
	}
	for ; i < end; i++ {
		if s[i] != ',' {
			digits = append(digits, s[i])
		}
	}
	e.tmp = digits
	d, ok := parseDecimalText(digits)
	if !ok || d.nan || d.inf {
		return b, fmt.Errorf("invalid money text %q", s)
	}
	switch e.opt.Decimal {
	case DecimalString:
		return AppendString(b, digits), nil
	case DecimalDouble:
		f, _ := strconv.ParseFloat(string(digits), 64)
		return appendJavaFloat(b, f, 64), nil
	}
	scale := e.opt.MoneyFractionDigits
	intPart, frac := d.int, d.frac
	if len(frac) > scale {
		// setScale(scale, HALF_UP): round the magnitude half up.
		r := new(big.Rat)
		r.SetString(string(append(append(append([]byte{}, intPart...), '.'), frac...)))
		r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
		r.Add(r, big.NewRat(1, 2))
		q := new(big.Int).Quo(r.Num(), r.Denom())
		if neg {
			q.Neg(q)
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, twosComplementBig(q))
		return append(b, '"'), nil
	}
	b = append(b, '"')
	b = e.appendUnscaled(b, neg, append([]byte(nil), intPart...), append([]byte(nil), frac...), scale)
	return append(b, '"'), nil
}
