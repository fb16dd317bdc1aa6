package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// The targets of 'make bench': 10,000 rules cost at most 1.2× one rule,
// and one rule at most 1.2× the hand-written floor.
const (
	targetFloorRatio = 1.20
	targetScaleRatio = 1.20
)

// sample is one measured run of a case.
type sample struct {
	sent    int
	counted uint64 // what the case's drop counters counted during the run
	elapsed time.Duration
}

func (r sample) pps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.sent) / r.elapsed.Seconds()
}

// confirmed: the counters counted exactly what was sent.
func (r sample) confirmed() bool { return r.sent > 0 && r.counted == uint64(r.sent) }

// result is what one case measured.
type result struct {
	c       benchCase
	targets int // destinations the packets went round-robin over
	runs    []sample
	skipped string // why the case was not measured
	err     error  // the case failed after some runs
}

// best is the best run's rate, and false when there is no figure: a run
// was refused (its counters disagree with what was sent) or none ran.
func (r *result) best() (float64, bool) {
	if r.skipped != "" || r.err != nil || len(r.runs) == 0 {
		return 0, false
	}
	b := 0.0
	for _, x := range r.runs {
		if !x.confirmed() {
			return 0, false
		}
		b = max(b, x.pps())
	}
	return b, true
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func mpps(v float64) string { return fmt.Sprintf("%.2f Mpps", v/1e6) }

// group writes n with thousands separators.
func group(n uint64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// header describes the run above the table.
type header struct {
	runs     int
	packets  int
	duration time.Duration
	nice     int
	veth     string
	loadFrom string
	loadTo   string
	cpus     int
}

// report prints the table of results, in the order of cases.
func report(w io.Writer, h header, rs []*result) {
	fmt.Fprintf(w, "\nscrubber drop rate (AF_PACKET sendmmsg, %d-byte UDP, best of %d runs of ≤ %s packets or %v)\n",
		payloadLen, h.runs, group(uint64(h.packets)), h.duration)
	fmt.Fprintf(w, "  %s, ingress hook priority -500, sender at nice %d; load average %s at the start, %s at the end (%d CPUs)\n",
		h.veth, h.nice, h.loadFrom, h.loadTo, h.cpus)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  case\tmeasured\truns (Mpps)\tdropped (counters)\tratio\ttarget\tverdict\n")
	byName := map[string]*result{}
	for _, r := range rs {
		byName[r.c.name] = r
	}
	ratio := func(num, den, label string, target float64) (string, string, string) {
		rn, rd := byName[num], byName[den]
		if rn == nil || rd == nil {
			return "", "", ""
		}
		a, aok := rn.best()
		b, bok := rd.best()
		ok := aok && bok && b > 0
		rt := label + " = –"
		if ok {
			rt = fmt.Sprintf("%s = %.2f", label, a/b)
		}
		switch {
		case target == 0 && ok:
			return rt, "", ""
		case target == 0:
			return "", "", ""
		case rn.skipped != "" || rd.skipped != "":
			return rt, fmt.Sprintf("≤ %.2f", target), "n/a"
		}
		return rt, fmt.Sprintf("≤ %.2f", target), verdict(ok && a/b <= target)
	}
	for _, r := range rs {
		var rt, tg, vd string
		switch r.c.rules {
		case 1:
			if !r.c.floor {
				rt, tg, vd = ratio(cases[0].name, r.c.name, "floor/1 rule", targetFloorRatio)
			}
		case 100:
			rt, tg, vd = ratio(cases[1].name, r.c.name, "1 rule/100", 0)
		case 10_000:
			rt, tg, vd = ratio(cases[1].name, r.c.name, "1 rule/10k", targetScaleRatio)
		}
		name := r.c.name
		if r.targets > 1 {
			name += fmt.Sprintf(" (%d hit)", r.targets)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, measured(r), runList(r), counters(r), rt, tg, vd)
	}
	tw.Flush()
}

func measured(r *result) string {
	switch {
	case r.skipped != "":
		return "skipped (" + r.skipped + ")"
	case r.err != nil:
		return "failed: " + r.err.Error()
	}
	if b, ok := r.best(); ok {
		return mpps(b)
	}
	return "no figure"
}

func runList(r *result) string {
	var s []string
	for _, x := range r.runs {
		s = append(s, fmt.Sprintf("%.2f", x.pps()/1e6))
	}
	return strings.Join(s, " ")
}

// counters is what the drop counters counted in all runs when that is
// exactly what was sent, or names the first run where it was not.
func counters(r *result) string {
	if len(r.runs) == 0 {
		return ""
	}
	var total uint64
	for i, x := range r.runs {
		if !x.confirmed() {
			return fmt.Sprintf("refused: run %d counted %s of %s sent", i+1, group(x.counted), group(uint64(x.sent)))
		}
		total += x.counted
	}
	return group(total) + " = sent"
}

// loadavg is the machine's load average over 1, 5 and 15 minutes.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
