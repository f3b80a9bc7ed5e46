package domain

import (
	"testing"
	"time"
)

func TestTimeRanges(t *testing.T) {
	for _, tc := range []struct {
		ranges []string
		at     string
		in     bool
	}{
		// Office hours: start included, end excluded.
		{[]string{"Mon-Fri 08:00-18:00"}, "Mon 2024-01-01 08:00:00", true},
		{[]string{"Mon-Fri 08:00-18:00"}, "Mon 2024-01-01 07:59:59", false},
		{[]string{"Mon-Fri 08:00-18:00"}, "Fri 2024-01-05 17:59:59", true},
		{[]string{"Mon-Fri 08:00-18:00"}, "Fri 2024-01-05 18:00:00", false},
		{[]string{"Mon-Fri 08:00-18:00"}, "Sat 2024-01-06 12:00:00", false},
		{[]string{"Mon-Fri 08:00-18:00"}, "Sun 2024-01-07 12:00:00", false},
		{[]string{"Mon-Fri 08:00-18:00", "Sat 10:00-12:00"}, "Sat 2024-01-06 10:30:00", true},
		{[]string{"Mon-Fri 08:00-18:00", "Sat 10:00-12:00"}, "Sat 2024-01-06 12:00:00", false},
		// Across midnight, every day.
		{[]string{"22:00-02:00"}, "Wed 2024-01-03 23:00:00", true},
		{[]string{"22:00-02:00"}, "Thu 2024-01-04 01:59:59", true},
		{[]string{"22:00-02:00"}, "Thu 2024-01-04 02:00:00", false},
		{[]string{"22:00-02:00"}, "Thu 2024-01-04 21:59:59", false},
		// Across midnight: the day names the start; Fri night reaches Sat.
		{[]string{"Fri 22:00-02:00"}, "Sat 2024-01-06 01:00:00", true},
		{[]string{"Fri 22:00-02:00"}, "Fri 2024-01-05 01:00:00", false},
		{[]string{"Fri 22:00-02:00"}, "Sat 2024-01-06 23:00:00", false},
		// Across the week's end: Saturday night reaches Sunday morning.
		{[]string{"Sat 22:00-02:00"}, "Sun 2024-01-07 01:30:00", true},
		{[]string{"Sat 22:00-02:00"}, "Sun 2024-01-07 22:30:00", false},
		{[]string{"Sat 22:00-02:00"}, "Sat 2024-01-06 01:30:00", false},
		// Day spans that wrap, lists, case, whole days.
		{[]string{"Fri-Mon 09:00-10:00"}, "Sun 2024-01-07 09:30:00", true},
		{[]string{"Fri-Mon 09:00-10:00"}, "Wed 2024-01-03 09:30:00", false},
		{[]string{"mon,WED 09:00-10:00"}, "Wed 2024-01-03 09:30:00", true},
		{[]string{"mon,WED 09:00-10:00"}, "Tue 2024-01-02 09:30:00", false},
		{[]string{"Sun 00:00-24:00"}, "Sun 2024-01-07 23:59:59", true},
		{[]string{"Sun 00:00-24:00"}, "Mon 2024-01-08 00:00:00", false},
		{[]string{"Sun 00:00-24:00"}, "Sun 2024-01-07 00:00:00", true},
		{[]string{"Sat 23:00-24:00"}, "Sun 2024-01-07 00:00:00", false},
		// No ranges: always.
		{nil, "Sun 2024-01-07 03:00:00", true},
	} {
		var ws []window
		for _, s := range tc.ranges {
			w, err := parseWindow(s)
			if err != nil {
				t.Fatalf("%q: %v", s, err)
			}
			ws = append(ws, w)
		}
		if got := inWindows(ws, at(t, tc.at)); got != tc.in {
			t.Errorf("%q at %s: got %v, want %v", tc.ranges, tc.at, got, tc.in)
		}
	}
}

// Ranges are UTC whatever zone the clock reports in.
func TestTimeRangesAreUTC(t *testing.T) {
	w, err := parseWindow("Mon 08:00-09:00")
	if err != nil {
		t.Fatal(err)
	}
	tokyo := time.FixedZone("JST", 9*3600)
	inUTC := at(t, "Mon 2024-01-01 08:30:00")
	if !w.contains(inUTC.In(tokyo)) {
		t.Fatal("08:30 UTC shown in JST is refused")
	}
	if w.contains(time.Date(2024, 1, 1, 8, 30, 0, 0, tokyo)) {
		t.Fatal("08:30 JST (23:30 UTC Sunday) is admitted")
	}
}
