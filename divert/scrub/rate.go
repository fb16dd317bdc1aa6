package scrub

import (
	"strconv"
	"strings"
	"time"
)

// AverageWindow is the span of the average rate in the status note.
const AverageWindow = 5 * time.Minute

// window keeps the counter differences of the reads of the last
// AverageWindow; their sum over their time is the average rate.
type window struct {
	samples []sample
}

type sample struct {
	end  time.Time
	dt   time.Duration
	diff countPair
}

// add takes the difference d counted in the dt before at, and forgets the
// reads that ended AverageWindow or more before at.
func (w *window) add(d countPair, at time.Time, dt time.Duration) {
	w.samples = append(w.samples, sample{at, dt, d})
	i := 0
	for i < len(w.samples) && !w.samples[i].end.After(at.Add(-AverageWindow)) {
		i++
	}
	w.samples = append(w.samples[:0], w.samples[i:]...)
}

// rate is the average bps and pps over the window (ok false: no read yet).
func (w *window) rate() (bps, pps uint64, ok bool) {
	var span time.Duration
	var sum countPair
	for _, s := range w.samples {
		span += s.dt
		sum.pkts += s.diff.pkts
		sum.bytes += s.diff.bytes
	}
	if span <= 0 {
		return 0, 0, false
	}
	return uint64(float64(sum.bytes) * 8 / span.Seconds()), uint64(float64(sum.pkts) / span.Seconds()), true
}

// formatRate writes v with an SI prefix and unit: "800 kpps", "1.2 Gbps",
// "5 pps" (one decimal below 10, none above).
func formatRate(v uint64, unit string) string {
	x, prefix := float64(v), ""
	for _, p := range []string{"k", "M", "G", "T"} {
		if x < 1000 {
			break
		}
		x, prefix = x/1000, p
	}
	prec := 0
	if x < 10 && prefix != "" {
		prec = 1
	}
	s := strconv.FormatFloat(x, 'f', prec, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + prefix + unit
}
