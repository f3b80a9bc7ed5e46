package domain

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// window is one parsed time range: on each of days (time.Weekday index) it
// opens at start and lasts length, both in seconds, in UTC. A range whose
// end is not after its start runs past midnight into the next day.
type window struct {
	days          [7]bool
	start, length int
}

const (
	daySeconds  = 24 * 60 * 60
	weekSeconds = 7 * daySeconds
)

var dayNames = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// parseWindow reads "[DAYS ]HH:MM-HH:MM". DAYS is a comma list of days
// (Mon) and day spans (Mon-Fri, Fri-Mon wraps); without it the range holds
// every day. Days name the day a range starts on: "Fri 22:00-02:00" ends
// Saturday 02:00. 24:00 is allowed as an end.
func parseWindow(s string) (window, error) {
	var w window
	f := strings.Fields(s)
	var clock string
	switch len(f) {
	case 1:
		clock = f[0]
		w.days = [7]bool{true, true, true, true, true, true, true}
	case 2:
		clock = f[1]
		if err := parseDays(f[0], &w.days); err != nil {
			return window{}, err
		}
	default:
		return window{}, errors.New(`want "[Mon-Fri ]HH:MM-HH:MM"`)
	}
	from, to, ok := strings.Cut(clock, "-")
	if !ok {
		return window{}, fmt.Errorf("times %q: want HH:MM-HH:MM", clock)
	}
	start, err := parseClock(from, false)
	if err != nil {
		return window{}, err
	}
	end, err := parseClock(to, true)
	if err != nil {
		return window{}, err
	}
	switch {
	case start == end:
		return window{}, fmt.Errorf("times %q: an empty range (for a whole day write 00:00-24:00)", clock)
	case end > start:
		w.start, w.length = start, end-start
	default: // crosses midnight
		w.start, w.length = start, daySeconds-start+end
	}
	return w, nil
}

func parseDays(s string, days *[7]bool) error {
	for part := range strings.SplitSeq(s, ",") {
		from, to, span := strings.Cut(part, "-")
		a, ok := dayNames[strings.ToLower(from)]
		if !ok {
			return fmt.Errorf("day %q: use Mon, Tue, Wed, Thu, Fri, Sat or Sun", from)
		}
		b := a
		if span {
			if b, ok = dayNames[strings.ToLower(to)]; !ok {
				return fmt.Errorf("day %q: use Mon, Tue, Wed, Thu, Fri, Sat or Sun", to)
			}
		}
		for d := a; ; d = (d + 1) % 7 {
			days[d] = true
			if d == b {
				break
			}
		}
	}
	return nil
}

// parseClock reads HH:MM (two digits each) as seconds after midnight.
func parseClock(s string, end bool) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || !twoDigits(hh) || !twoDigits(mm) {
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	h, _ := strconv.Atoi(hh)
	m, _ := strconv.Atoi(mm)
	switch {
	case h == 24 && m == 0 && end:
		return daySeconds, nil
	case h > 23 || m > 59:
		return 0, fmt.Errorf("time %q is not a time of day (24:00 only as an end)", s)
	}
	return h*3600 + m*60, nil
}

func twoDigits(s string) bool {
	return len(s) == 2 && s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9'
}

// contains reports whether t (converted to UTC) falls inside w: the start
// is included, the end is not.
func (w window) contains(t time.Time) bool {
	t = t.UTC()
	now := int(t.Weekday())*daySeconds + t.Hour()*3600 + t.Minute()*60 + t.Second()
	for d, on := range w.days {
		if !on {
			continue
		}
		// Seconds since this day's opening, wrapped over the week so that
		// Sat 22:00-02:00 reaches into Sunday.
		since := ((now-(d*daySeconds+w.start))%weekSeconds + weekSeconds) % weekSeconds
		if since < w.length {
			return true
		}
	}
	return false
}

// inWindows reports whether t is inside any of ws; no windows means always.
func inWindows(ws []window, t time.Time) bool {
	if len(ws) == 0 {
		return true
	}
	for _, w := range ws {
		if w.contains(t) {
			return true
		}
	}
	return false
}
