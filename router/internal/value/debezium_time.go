package value

import (
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"
)

// Java's LocalDate for Postgres's ±infinity dates, as the JDBC driver and
// Debezium represent them (year -5877611: both, oddly, far in the past).
var (
	posInfinityDays = daysFromCivil(-5877611, 6, 21)
	negInfinityDays = daysFromCivil(-5877611, 6, 22)
)

// pgjdbc's DATE_POSITIVE_INFINITY / DATE_NEGATIVE_INFINITY, which Debezium
// turns into the instants it encodes for ±infinity timestamps.
const (
	posInfinityMicros = 9223372036825200000
	negInfinityMicros = -9223372036832400000
)

func (e *Debezium) appendDate(b []byte, s []byte) ([]byte, error) {
	var days int64
	switch string(s) {
	case "infinity":
		days = posInfinityDays
	case "-infinity":
		days = negInfinityDays
	default:
		var p stamp
		i, ok := parseDate(s, &p)
		if !ok {
			return b, badText(pgtype.DateOID, s)
		}
		if i != len(s) {
			if string(s[i:]) != " BC" {
				return b, badText(pgtype.DateOID, s)
			}
			p.bc = true
		}
		days = daysFromCivil(p.properYear(), p.mon, p.day)
	}
	// Date.toEpochDay's int.
	return strconv.AppendInt(b, int64(int32(days)), 10), nil
}

func (p *stamp) properYear() int {
	if p.bc {
		return 1 - p.year
	}
	return p.year
}

// daysFromCivil counts days from 1970-01-01 in the proleptic Gregorian
// calendar, as Java's LocalDate and Postgres both do.
func daysFromCivil(y, m, d int) int64 {
	yy := int64(y)
	if m <= 2 {
		yy--
	}
	era := yy / 400
	if yy < 0 && yy%400 != 0 {
		era--
	}
	yoe := yy - era*400
	mp := int64(m+9) % 12
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// parseClock parses "HH:MM:SS[.ffffff]" (24:00:00 included) into
// microseconds.
func parseClock(s []byte) (int64, bool) {
	h, i, ok := digits(s, 0, 2)
	if !ok || i >= len(s) || s[i] != ':' {
		return 0, false
	}
	m, i, ok := digits(s, i+1, 2)
	if !ok || i >= len(s) || s[i] != ':' {
		return 0, false
	}
	sec, i, ok := digits(s, i+1, 2)
	if !ok {
		return 0, false
	}
	usec, i, ok := parseFraction(s, i)
	if !ok || i != len(s) || m > 59 || sec > 60 || h > 24 {
		return 0, false
	}
	return ((int64(h)*60+int64(m))*60+int64(sec))*1e6 + int64(usec), true
}

// parseFraction parses an optional ".f{1,6}" at s[i:].
func parseFraction(s []byte, i int) (usec, next int, ok bool) {
	if i >= len(s) || s[i] != '.' {
		return 0, i, true
	}
	i++
	n := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if n == 6 {
			return 0, i, false
		}
		usec = usec*10 + int(s[i]-'0')
		n++
	}
	if n == 0 {
		return 0, i, false
	}
	for ; n < 6; n++ {
		usec *= 10
	}
	return usec, i, true
}

// parseOffset parses "±HH[:MM[:SS]]" at s[i:] into seconds east of UTC.
func parseOffset(s []byte, i int) (int, int, bool) {
	if i >= len(s) || (s[i] != '+' && s[i] != '-') {
		return 0, i, false
	}
	sign := 1
	if s[i] == '-' {
		sign = -1
	}
	h, i, ok := digits(s, i+1, 2)
	if !ok {
		return 0, i, false
	}
	var m, sec int
	if i < len(s) && s[i] == ':' {
		if m, i, ok = digits(s, i+1, 2); !ok {
			return 0, i, false
		}
		if i < len(s) && s[i] == ':' {
			if sec, i, ok = digits(s, i+1, 2); !ok {
				return 0, i, false
			}
		}
	}
	return sign * (h*3600 + m*60 + sec), i, true
}

// appendTimetz renders timetz as Debezium's ZonedTime: the time moved to
// UTC (wrapping around midnight), ISO-8601 with the fraction's trailing
// zeros dropped, and 'Z'.
func appendTimetz(b []byte, s []byte) ([]byte, error) {
	i := 0
	h, i, ok := digits(s, i, 2)
	if !ok || i >= len(s) || s[i] != ':' {
		return b, badText(pgtype.TimetzOID, s)
	}
	m, i, ok := digits(s, i+1, 2)
	if !ok || i >= len(s) || s[i] != ':' {
		return b, badText(pgtype.TimetzOID, s)
	}
	sec, i, ok := digits(s, i+1, 2)
	if !ok {
		return b, badText(pgtype.TimetzOID, s)
	}
	usec, i, ok := parseFraction(s, i)
	if !ok {
		return b, badText(pgtype.TimetzOID, s)
	}
	off, i, ok := parseOffset(s, i)
	if !ok || i != len(s) || h > 24 || m > 59 || sec > 60 {
		return b, badText(pgtype.TimetzOID, s)
	}
	const day = 86400
	t := ((h*60+m)*60 + sec - off) % day
	if t < 0 {
		t += day
	}
	b = append(b, '"')
	b = appendPadded(b, t/3600, 2)
	b = append(b, ':')
	b = appendPadded(b, t/60%60, 2)
	b = append(b, ':')
	b = appendPadded(b, t%60, 2)
	b = appendTrimmedFraction(b, usec)
	return append(b, `Z"`...), nil
}

func appendTrimmedFraction(b []byte, usec int) []byte {
	if usec == 0 {
		return b
	}
	b = append(b, '.')
	n := 6
	for usec%10 == 0 {
		usec /= 10
		n--
	}
	return appendPadded(b, usec, n)
}

// timestampMicros parses timestamp text into microseconds since the epoch,
// with Debezium's values for ±infinity.
func timestampMicros(s []byte) (int64, bool) {
	switch string(s) {
	case "infinity":
		return posInfinityMicros, true
	case "-infinity":
		return negInfinityMicros, true
	}
	p, _, ok := parseStamp(s, false)
	if !ok {
		return 0, false
	}
	return stampMicros(&p), true
}

func stampMicros(p *stamp) int64 {
	days := daysFromCivil(p.properYear(), p.mon, p.day)
	return (days*86400+int64(p.hour*3600+p.min*60+p.sec))*1e6 + int64(p.usec)
}

// appendZonedTimestamp renders timestamptz as Debezium's ZonedTimestamp:
// UTC, ISO-8601 as Java prints it (years past 9999 with '+', BC as
// negative years, year 0 for 1 BC), with exactly prec fractional digits,
// or as many as needed when prec is 0; infinity stays a word.
func appendZonedTimestamp(b []byte, s []byte, prec int) ([]byte, error) {
	if isInfinity(s) {
		return AppendString(b, s), nil
	}
	p, offset, ok := parseStamp(s, true)
	if !ok {
		return b, badText(pgtype.TimestamptzOID, s)
	}
	usec := stampMicros(&p) - int64(offset)*1e6
	days := floorDiv(usec, 86400e6)
	rem := usec - days*86400e6
	y, mo, d := civilFromDays(days)
	b = append(b, '"')
	switch {
	case y > 9999:
		b = append(b, '+')
		b = strconv.AppendInt(b, y, 10)
	case y < 0:
		b = append(b, '-')
		b = appendPadded(b, int(-y), 4)
	default:
		b = appendPadded(b, int(y), 4)
	}
	b = append(b, '-')
	b = appendPadded(b, mo, 2)
	b = append(b, '-')
	b = appendPadded(b, d, 2)
	b = append(b, 'T')
	secs := int(rem / 1e6)
	frac := int(rem % 1e6)
	b = appendPadded(b, secs/3600, 2)
	b = append(b, ':')
	b = appendPadded(b, secs/60%60, 2)
	b = append(b, ':')
	b = appendPadded(b, secs%60, 2)
	if prec <= 0 || prec > 9 {
		b = appendTrimmedFraction(b, frac)
	} else {
		b = append(b, '.')
		var buf [9]byte
		f := frac * 1000 // nanoseconds, as Java formats them
		for i := 8; i >= 0; i-- {
			buf[i] = byte('0' + f%10)
			f /= 10
		}
		b = append(b, buf[:prec]...)
	}
	return append(b, `Z"`...), nil
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y int64, m, d int) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		m = int(mp + 3)
	} else {
		m = int(mp - 9)
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}
