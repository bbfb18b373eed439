package snapshot

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Lines renders j for a person: a head line, then one line per table with
// rows done, rows per second and time left, as a progress bar when bars
// (a terminal) and as plain fields otherwise.
func (j *Job) Lines(now time.Time, bars bool) []string {
	head := fmt.Sprintf("%s  %s  %s", j.ID, j.Kind, j.State)
	if j.Cancel && !j.Final() {
		head += " (cancel requested)"
	}
	head += "  by " + j.By
	if len(j.Sinks) > 0 {
		head += "  sinks " + strings.Join(j.Sinks, ",")
	}
	if j.Started != nil {
		end := now
		if j.Finished != nil {
			end = *j.Finished
		}
		head += "  " + end.Sub(*j.Started).Round(time.Second).String()
	}
	if j.Resumed > 0 {
		head += fmt.Sprintf("  resumed %d×", j.Resumed)
	}
	if j.Error != "" {
		head += "  error: " + j.Error
	}
	lines := []string{head}
	width := 0
	for _, t := range j.Tables {
		width = max(width, len(t.Table))
	}
	for _, t := range j.Tables {
		rate, left := t.Rate(now)
		var b strings.Builder
		fmt.Fprintf(&b, "  %-*s  %-9s", width, t.Table, t.State)
		if bars {
			b.WriteString(" " + bar(t, 24) + " ")
		}
		fmt.Fprintf(&b, " %s rows", count(t.Rows))
		if t.Estimate > 0 && t.State != StateDone {
			fmt.Fprintf(&b, " of ~%s", count(max(t.Estimate, t.Rows)))
		}
		if rate > 0 {
			fmt.Fprintf(&b, "  %s rows/s", count(int64(math.Round(rate))))
		}
		if left > 0 {
			fmt.Fprintf(&b, "  eta %s", left.Round(time.Second))
		}
		if t.Error != "" {
			b.WriteString("  error: " + t.Error)
		}
		lines = append(lines, b.String())
	}
	return lines
}

// bar is a progress bar of n cells for t.
func bar(t TableProgress, n int) string {
	frac := 0.0
	switch {
	case t.State == StateDone:
		frac = 1
	case t.Estimate > 0:
		frac = min(float64(t.Rows)/float64(t.Estimate), 0.99)
	}
	full := int(frac * float64(n))
	return "[" + strings.Repeat("#", full) + strings.Repeat(".", n-full) + fmt.Sprintf("] %3d%%", int(frac*100))
}

// count writes n with thousands separators.
func count(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
