package value

import (
	"math"
	"time"
)

// stamp is a timestamp broken into the fields Postgres prints. Years are as
// Postgres counts them: there is no year 0, 1 BC precedes 1 AD.
type stamp struct {
	year             int
	bc               bool
	mon, day         int
	hour, min, sec   int
	usec             int
	hasTime, hasZone bool
}

// appendTimestampText renders timestamp and timestamptz text (ISO DateStyle)
// the way to_jsonb does: 'T' between date and time. timestamptz goes to UTC
// and gets a 'Z' in the years RFC 3339 can express (1 to 9999 AD); outside
// them it keeps to_jsonb's exact form ("+00:00", " BC" suffix) because no
// RFC 3339 parser would read those anyway.
func appendTimestampText(b []byte, tz bool, s []byte) ([]byte, error) {
	oid := uint32(1114)
	if tz {
		oid = 1184
	}
	if isInfinity(s) {
		return AppendString(b, s), nil
	}
	p, offset, ok := parseStamp(s, tz)
	if !ok {
		return b, badText(oid, s)
	}
	if offset != 0 {
		p = p.shift(-offset)
	}
	return appendStamp(b, &p), nil
}

func isInfinity(s []byte) bool {
	return string(s) == "infinity" || string(s) == "-infinity"
}

// parseStamp parses "YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM[:SS]]][ BC]", the
// zone being present exactly when tz. offset is in seconds east of UTC.
func parseStamp(s []byte, tz bool) (p stamp, offset int, ok bool) {
	i, ok := parseDate(s, &p)
	if !ok || i >= len(s) || s[i] != ' ' {
		return p, 0, false
	}
	i++
	p.hasTime = true
	if p.hour, i, ok = digits(s, i, 2); !ok || i >= len(s) || s[i] != ':' {
		return p, 0, false
	}
	if p.min, i, ok = digits(s, i+1, 2); !ok || i >= len(s) || s[i] != ':' {
		return p, 0, false
	}
	if p.sec, i, ok = digits(s, i+1, 2); !ok {
		return p, 0, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		n := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			if n == 6 {
				return p, 0, false
			}
			p.usec = p.usec*10 + int(s[i]-'0')
			n++
		}
		if n == 0 {
			return p, 0, false
		}
		for ; n < 6; n++ {
			p.usec *= 10
		}
	}
	if tz {
		p.hasZone = true
		if i >= len(s) || (s[i] != '+' && s[i] != '-') {
			return p, 0, false
		}
		sign := 1
		if s[i] == '-' {
			sign = -1
		}
		var h, m, sec int
		if h, i, ok = digits(s, i+1, 2); !ok {
			return p, 0, false
		}
		if i < len(s) && s[i] == ':' {
			if m, i, ok = digits(s, i+1, 2); !ok {
				return p, 0, false
			}
			if i < len(s) && s[i] == ':' {
				if sec, i, ok = digits(s, i+1, 2); !ok {
					return p, 0, false
				}
			}
		}
		offset = sign * (h*3600 + m*60 + sec)
	}
	if string(s[i:]) == " BC" {
		p.bc = true
		i += 3
	}
	if i != len(s) || p.hour > 24 || p.min > 59 || p.sec > 60 {
		return p, 0, false
	}
	return p, offset, true
}

// parseDate parses "YYYY-MM-DD" (four or more year digits) at the start of s
// and returns the index after it.
func parseDate(s []byte, p *stamp) (int, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		if i == 9 { // beyond any year Postgres can store
			return 0, false
		}
		p.year = p.year*10 + int(s[i]-'0')
		i++
	}
	if i < 4 || i >= len(s) || s[i] != '-' {
		return 0, false
	}
	var ok bool
	if p.mon, i, ok = digits(s, i+1, 2); !ok || i >= len(s) || s[i] != '-' {
		return 0, false
	}
	if p.day, i, ok = digits(s, i+1, 2); !ok {
		return 0, false
	}
	if p.mon < 1 || p.mon > 12 || p.day < 1 || p.day > 31 || p.year == 0 {
		return 0, false
	}
	return i, true
}

// isDateText reports whether s is a date as Postgres prints it in ISO
// DateStyle, which is also what to_jsonb gives.
func isDateText(s []byte) bool {
	if isInfinity(s) {
		return true
	}
	var p stamp
	i, ok := parseDate(s, &p)
	if !ok {
		return false
	}
	return i == len(s) || string(s[i:]) == " BC"
}

// digits parses exactly n decimal digits at s[i:].
func digits(s []byte, i, n int) (int, int, bool) {
	if i+n > len(s) {
		return 0, i, false
	}
	v := 0
	for k := i; k < i+n; k++ {
		c := s[k]
		if c < '0' || c > '9' {
			return 0, i, false
		}
		v = v*10 + int(c-'0')
	}
	return v, i + n, true
}

// shift moves p by seconds; rare (only for non-UTC sessions), so it may go
// through time.Time.
func (p stamp) shift(seconds int) stamp {
	year := p.year
	if p.bc {
		year = 1 - year
	}
	t := time.Date(year, time.Month(p.mon), p.day, p.hour, p.min, p.sec, p.usec*1000, time.UTC)
	return stampOf(t.Add(time.Duration(seconds)*time.Second), p.hasTime, p.hasZone)
}

// stampOf breaks t (UTC) into Postgres's fields.
func stampOf(t time.Time, hasTime, hasZone bool) stamp {
	y, m, d := t.Date()
	h, mi, s := t.Clock()
	p := stamp{year: y, mon: int(m), day: d, hour: h, min: mi, sec: s, usec: t.Nanosecond() / 1000, hasTime: hasTime, hasZone: hasZone}
	if y <= 0 {
		p.bc = true
		p.year = 1 - y
	}
	return p
}

// appendStamp appends p as a JSON string, in to_jsonb's form (see
// appendTimestampText).
func appendStamp(b []byte, p *stamp) []byte {
	b = append(b, '"')
	b = appendPadded(b, p.year, 4)
	b = append(b, '-')
	b = appendPadded(b, p.mon, 2)
	b = append(b, '-')
	b = appendPadded(b, p.day, 2)
	if p.hasTime {
		b = append(b, 'T')
		b = appendPadded(b, p.hour, 2)
		b = append(b, ':')
		b = appendPadded(b, p.min, 2)
		b = append(b, ':')
		b = appendPadded(b, p.sec, 2)
		if p.usec != 0 {
			b = append(b, '.')
			u, n := p.usec, 6
			for u%10 == 0 {
				u /= 10
				n--
			}
			b = appendPadded(b, u, n)
		}
	}
	if p.hasZone {
		if p.bc || p.year > 9999 {
			b = append(b, "+00:00"...)
		} else {
			b = append(b, 'Z')
		}
	}
	if p.bc {
		b = append(b, " BC"...)
	}
	return append(b, '"')
}

// appendPadded appends v >= 0 in decimal, zero-padded to at least n digits.
func appendPadded(b []byte, v, n int) []byte {
	var buf [20]byte
	i := len(buf)
	for v >= 10 || n > 1 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		n--
	}
	i--
	buf[i] = byte('0' + v)
	return append(b, buf[i:]...)
}

// Postgres's binary dates and timestamps count from 2000-01-01 UTC.
const pgEpochUnix = 946684800

// appendTimestampBinary renders a binary timestamp or timestamptz:
// microseconds since 2000-01-01, with the extreme values meaning infinity.
func appendTimestampBinary(b []byte, tz bool, v int64) []byte {
	switch v {
	case math.MaxInt64:
		return append(b, `"infinity"`...)
	case math.MinInt64:
		return append(b, `"-infinity"`...)
	}
	sec := v / 1e6
	usec := v % 1e6
	if usec < 0 {
		sec--
		usec += 1e6
	}
	p := stampOf(time.Unix(sec+pgEpochUnix, usec*1000).UTC(), true, tz)
	return appendStamp(b, &p)
}

// appendDateBinary renders a binary date: days since 2000-01-01.
func appendDateBinary(b []byte, v int32) []byte {
	switch v {
	case math.MaxInt32:
		return append(b, `"infinity"`...)
	case math.MinInt32:
		return append(b, `"-infinity"`...)
	}
	p := stampOf(time.Unix(int64(v)*86400+pgEpochUnix, 0).UTC(), false, false)
	return appendStamp(b, &p)
}
