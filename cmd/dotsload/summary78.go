package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

func (s *summary) printP7(tw io.Writer, row rowFunc) {
	p7 := s.p7
	f, plan := p7.flood, p7.plan
	note := ""
	if plan.rate != targetFloodRate || plan.duration() != targetFloodDuration || plan.sources != targetFloodSources {
		note = fmt.Sprintf(" [bench: %d/s for %v from %d sources]", targetFloodRate, targetFloodDuration, targetFloodSources)
	}
	measured := fmt.Sprintf("%d packets in %v from %d sources, %d send errors", f.sent, f.elapsed.Round(10*time.Millisecond), plan.sources, f.sendErrors)
	if f.stopped != "" {
		measured += " (stopped: " + f.stopped + ")"
	}
	row("spoofed flood sent", measured, fmt.Sprintf("%d in %v%s", plan.total, plan.duration(), note), f.asPlanned(plan))
	growth := fmt.Sprintf("%s (before %s, peak %s, %v after %s)", mib(p7.growth()), mib(p7.rssBefore), mib(p7.rssPeak), afterFloodWindow, mib(p7.rssAfter))
	if p7.serverExited {
		growth += ", dotsd EXITED"
	}
	row("spoofed flood: dotsd RSS growth", growth, "≤ "+mib(targetFloodRSSGrowth), !p7.serverExited && p7.growth() <= targetFloodRSSGrowth)
	q, d := p7.quiet.hsLat(), p7.during.hsLat()
	row("spoofed flood: handshake p99", fmt.Sprintf("%s vs %s quiet (%.1f×; %d of %d failed, quiet %d of %d)", ms(d.p99), ms(q.p99), p7.hsRatio(),
		p7.during.hsFailed, d.n, p7.quiet.hsFailed, q.n), fmt.Sprintf("≤ %.0f× quiet", targetFloodHSRatio),
		q.n > 0 && d.n > 0 && p7.hsRatio() <= targetFloodHSRatio)
	qp, dp := p7.quiet.putLat(), p7.during.putLat()
	fmt.Fprintf(tw, "spoofed flood: PUT p99\t%s vs %s quiet (p50 %s vs %s; %d of %d failed)\t(informative)\t\n", ms(dp.p99), ms(qp.p99), ms(dp.p50), ms(qp.p50),
		p7.during.put.timeouts+p7.during.put.errors, dp.n)
}

func (s *summary) printP8(tw io.Writer, row rowFunc) {
	p8 := s.p8
	q, l := p8.quiet.putLat(), p8.loaded.putLat()
	r50, r99 := p8.ratios()
	failed := p8.loaded.put.timeouts + p8.loaded.put.errors
	target := fmt.Sprintf("≤ %.0f× quiet", targetFairRatio)
	row("fairness: B's PUT p50 under A", fmt.Sprintf("%s vs %s alone (%.1f×)", ms(l.p50), ms(q.p50), r50), target, q.n > 0 && r50 <= targetFairRatio)
	row("fairness: B's PUT p99 under A", fmt.Sprintf("%s vs %s alone (%.1f×; %d of %d failed)", ms(l.p99), ms(q.p99), r99, failed, l.n), target, q.n > 0 && r99 <= targetFairRatio)
	n := p8.aRequests()
	fmt.Fprintf(tw, "fairness: client A's requests\t%d (%.0f/s): 4.29 × %d; %s\t(informative)\t\n", n, float64(n)/max(p8.aElapsed.Seconds(), 1e-9),
		p8.aCodes[tooManyRequests], strings.ReplaceAll(p8.aSummary(), "\t", " "))
}

// aSummary is A's answers other than 4.29, and its failures.
func (r *phase8Result) aSummary() string {
	other := map[string]int{}
	for c, n := range r.aCodes {
		if c != tooManyRequests {
			other[c.String()] += n
		}
	}
	parts := []string{}
	for _, k := range slices.Sorted(maps.Keys(other)) {
		parts = append(parts, fmt.Sprintf("%s × %d", k, other[k]))
	}
	parts = append(parts, fmt.Sprintf("%d timeouts, %d errors", r.aTimeouts, r.aErrors))
	return strings.Join(parts, ", ")
}

// figures78 are the headline figures of phases 7 and 8 (see figures).
func (s *summary) figures78(f func(string, float64)) {
	msf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	if p7 := s.p7; p7 != nil && p7.skipped == "" {
		f("flood_rss_growth_mib", float64(p7.growth())/(1<<20))
		f("flood_handshake_p99_ms", msf(p7.during.hsLat().p99))
		f("quiet_handshake_p99_ms", msf(p7.quiet.hsLat().p99))
		f("flood_put_p99_ms", msf(p7.during.putLat().p99))
		f("quiet_put_p99_ms", msf(p7.quiet.putLat().p99))
	}
	if p8 := s.p8; p8 != nil {
		q, l := p8.quiet.putLat(), p8.loaded.putLat()
		f("fair_quiet_put_p50_ms", msf(q.p50))
		f("fair_quiet_put_p99_ms", msf(q.p99))
		f("fair_loaded_put_p50_ms", msf(l.p50))
		f("fair_loaded_put_p99_ms", msf(l.p99))
		f("fair_a_429", float64(p8.aCodes[tooManyRequests]))
	}
}
