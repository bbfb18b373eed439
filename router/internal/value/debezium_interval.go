package value

import (
	"math"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"
)

// interval is an interval as the JDBC driver's PGInterval parses
// Postgres's output: whole fields, seconds as a double rounded to
// microseconds.
type interval struct {
	years, months, days, hours, minutes int
	wholeSec, micros                    int64
}

func (iv *interval) seconds() float64 {
	return float64(iv.wholeSec) + float64(iv.micros)/1e6
}

// parseInterval reads IntervalStyle postgres output the way PGInterval
// does: "<n> <unit>" pairs and an optional "[-]H:MM:SS[.f]".
func parseInterval(s []byte) (iv interval, ok bool) {
	var sec float64
	var pending []byte
	havePending := false
	i, n := 0, 0
	for i < len(s) {
		for i < len(s) && (s[i] == ' ' || s[i] == '+') {
			i++
		}
		if i >= len(s) {
			break
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '+' {
			j++
		}
		tok := s[i:j]
		i = j
		n++
		if n%2 == 1 {
			colon := -1
			for k, c := range tok {
				if c == ':' {
					colon = k
					break
				}
			}
			if colon == -1 {
				pending, havePending = tok, true
				continue
			}
			neg := tok[0] == '-'
			off := 0
			if neg {
				off = 1
			}
			h, err := strconv.Atoi(string(tok[off:colon]))
			if err != nil || colon+3 > len(tok) {
				return iv, false
			}
			m, err := strconv.Atoi(string(tok[colon+1 : colon+3]))
			if err != nil {
				return iv, false
			}
			var sv float64
			if colon+3 < len(tok) {
				if tok[colon+3] != ':' {
					return iv, false
				}
				if sv, err = strconv.ParseFloat(string(tok[colon+4:]), 64); err != nil {
					return iv, false
				}
			}
			if neg {
				h, m, sv = -h, -m, -sv
			}
			iv.hours, iv.minutes, sec = h, m, sv
			havePending = false
			continue
		}
		if !havePending {
			return iv, false
		}
		v, err := strconv.Atoi(string(pending))
		var fv float64
		if err != nil {
			if fv, err = strconv.ParseFloat(string(pending), 64); err != nil {
				return iv, false
			}
		}
		switch {
		case hasPrefix(tok, "year"):
			iv.years = v
		case hasPrefix(tok, "mon"):
			iv.months = v
		case hasPrefix(tok, "day"):
			iv.days = v
		case hasPrefix(tok, "hour"):
			iv.hours = v
		case hasPrefix(tok, "min"):
			iv.minutes = v
		case hasPrefix(tok, "sec"):
			if fv == 0 {
				fv = float64(v)
			}
			sec = fv
		default:
			return iv, false
		}
		havePending = false
	}
	if havePending {
		return iv, false
	}
	// PGInterval.setSeconds: Math.round to microseconds, then split.
	total := int64(math.Floor(sec*1e6 + 0.5))
	iv.wholeSec = total / 1e6
	iv.micros = total % 1e6
	return iv, true
}

func hasPrefix(s []byte, p string) bool {
	return len(s) >= len(p) && string(s[:len(p)]) == p
}

// appendInterval renders interval per interval.handling.mode: numeric is
// Debezium's MicroDuration arithmetic in doubles (a month is 365.25/12
// days, truncated to a whole microsecond); string its ISO-8601 period.
func (e *Debezium) appendInterval(b []byte, s []byte) ([]byte, error) {
	iv, ok := parseInterval(s)
	if !ok {
		return b, badText(pgtype.IntervalOID, s)
	}
	if e.opt.Interval == IntervalString {
		b = append(b, "\"P"...)
		b = strconv.AppendInt(b, int64(iv.years), 10)
		b = append(b, 'Y')
		b = strconv.AppendInt(b, int64(iv.months), 10)
		b = append(b, 'M')
		b = strconv.AppendInt(b, int64(iv.days), 10)
		b = append(b, "DT"...)
		b = strconv.AppendInt(b, int64(iv.hours), 10)
		b = append(b, 'H')
		b = strconv.AppendInt(b, int64(iv.minutes), 10)
		b = append(b, 'M')
		b = strconv.AppendFloat(b, iv.seconds(), 'f', -1, 64)
		return append(b, `S"`...), nil
	}
	return strconv.AppendInt(b, DurationMicros(iv.years, iv.months, iv.days, iv.hours, iv.minutes, iv.seconds()), 10), nil
}

// DurationMicros is Debezium's MicroDuration.durationMicros with its
// average month: every step rounded to a double as Java does (the
// explicit conversions keep Go from fusing multiply-adds).
func DurationMicros(years, months, days, hours, minutes int, seconds float64) int64 {
	const daysPerMonth = 365.25 / 12.0
	numberOfDays := float64(float64(years*12+months)*daysPerMonth) + float64(days)
	s := float64(float64(float64(float64(float64(numberOfDays*24)+float64(hours))*60)+float64(minutes))*60) + seconds
	return javaLong(float64(s * 1e6))
}

// javaLong converts f as Java's (long) cast does: toward zero, saturating
// at the int64 bounds, NaN to 0. Go's conversion of an out-of-range float
// is implementation-defined (on amd64 it gives math.MinInt64 for both
// signs), so an interval of more than 292,471 years would change sign.
func javaLong(f float64) int64 {
	switch {
	case f != f:
		return 0
	case f >= 1<<63:
		return math.MaxInt64
	case f <= -(1 << 63):
		return math.MinInt64
	}
	return int64(f)
}
