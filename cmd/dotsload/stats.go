package main

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method: the smallest value such that at least p% of the
// samples are less than or equal to it. It returns 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// latencies summarises a set of samples.
type latencies struct {
	n             int
	p50, p99, max time.Duration
}

func summarize(samples []time.Duration) latencies {
	s := slices.Clone(samples)
	slices.Sort(s)
	l := latencies{n: len(s), p50: percentile(s, 50), p99: percentile(s, 99)}
	if len(s) > 0 {
		l.max = s[len(s)-1]
	}
	return l
}

func (l latencies) String() string {
	if l.n == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p99 %s  max %s  (n=%d)", ms(l.p50), ms(l.p99), ms(l.max), l.n)
}

// ms formats a duration in milliseconds with three significant decimals.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + " ms"
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// procStatus reads VmRSS and VmHWM (bytes) from /proc/PID/status ("self" for this process).
func procStatus(pid string) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	return rss, hwm, nil
}

// udpCounters are the namespace-wide UDP error counters of /proc/net/snmp
// plus the drops of the server's own socket (/proc/net/udp).
type udpCounters struct {
	inErrors, rcvbufErrors, serverDrops int64
	ok                                  bool
}

func readUDPCounters(serverPort int) udpCounters {
	var c udpCounters
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return c
	}
	var head []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "Udp: ") {
			continue
		}
		f := strings.Fields(line)
		if head == nil {
			head = f
			continue
		}
		for i := 1; i < len(f) && i < len(head); i++ {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			switch head[i] {
			case "InErrors":
				c.inErrors = n
			case "RcvbufErrors":
				c.rcvbufErrors = n
			}
		}
		c.ok = true
		break
	}
	// The server socket: local port serverPort, no remote address; drops is the last column.
	if b, err := os.ReadFile("/proc/net/udp"); err == nil {
		local := fmt.Sprintf(":%04X", serverPort)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 13 || !strings.HasSuffix(f[1], local) || f[2] != "00000000:0000" {
				continue
			}
			n, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
			c.serverDrops += n
		}
	}
	return c
}

func (c udpCounters) since(before udpCounters) string {
	if !c.ok || !before.ok {
		return "UDP counters unavailable"
	}
	return fmt.Sprintf("UDP InErrors +%d, RcvbufErrors +%d (namespace-wide); server socket drops +%d",
		c.inErrors-before.inErrors, c.rcvbufErrors-before.rcvbufErrors, c.serverDrops-before.serverDrops)
}

// procCPU returns the user+system CPU time of a process (/proc/PID/stat).
func procCPU(pid string) time.Duration {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s) // f[0] is field 3 (state); utime and stime are fields 14 and 15
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// cpuMeter reports a process's CPU use over an interval.
type cpuMeter struct {
	pid   string
	cpu   time.Duration
	start time.Time
}

func startCPU(pid string) cpuMeter { return cpuMeter{pid, procCPU(pid), time.Now()} }

// report describes the CPU used since start, and per operation if ops > 0.
func (m cpuMeter) report(ops int, what string) string {
	used, wall := procCPU(m.pid)-m.cpu, time.Since(m.start)
	s := fmt.Sprintf("server CPU %.2f s over %.1f s (%.0f%% of a core)", used.Seconds(), wall.Seconds(), 100*used.Seconds()/wall.Seconds())
	if ops > 0 {
		s += fmt.Sprintf(", %.0f µs per %s", float64(used.Microseconds())/float64(ops), what)
	}
	return s
}
