package runner

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// vitals reads the one-minute load average and memory use from /proc.
// On systems without /proc the values stay zero; the heartbeat still goes.
func vitals() (load1 float64, memUsed, memTotal uint64) {
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			load1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return load1, 0, 0
	}
	var total, avail uint64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			total = kb * 1024
		case "MemAvailable:":
			avail = kb * 1024
		}
	}
	if avail > total {
		avail = total
	}
	return load1, total - avail, total
}

// uptime reads the host's uptime in seconds from /proc.
func uptime() float64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	s, _ := strconv.ParseFloat(f[0], 64)
	return s
}
