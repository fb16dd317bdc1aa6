package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// summary gathers the phase results for the final table.
type summary struct {
	p1 *phase1Result
	p2 *phase2Result
	p3 *phase3Result
	p4 *phase4Result
	p5 *phase5Result
	p6 *phase6Result
	p7 *phase7Result
	p8 *phase8Result
}

// The targets of 'make bench'.
const (
	targetCreateP99     = 2 * time.Millisecond
	targetCycleRate     = 3000.0
	targetCycleSessions = 100
	targetHandshakeRate = 1000.0
	targetHBSessions    = 20000
	targetRSS           = int64(1536) << 20 // 1.5 GiB for 20,000 sessions
	targetPutToRoute    = 100 * time.Millisecond
)

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func (s *summary) print(w io.Writer) {
	fmt.Fprintf(w, "\n== summary\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(figure, measured, target string, ok bool) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", figure, measured, target, verdict(ok))
	}
	fmt.Fprintf(tw, "figure\tmeasured\ttarget\tverdict\n")
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", dash(6), dash(8), dash(6), dash(7))

	skipped := func(figure string) { fmt.Fprintf(tw, "%s\t(phase not run)\t\t\n", figure) }
	if s.p1 == nil {
		skipped("create p99, one session")
	} else {
		s.printP1(row)
	}
	if s.p2 == nil {
		skipped("cycles/s")
	} else {
		s.printP2(row)
	}
	if s.p3 == nil {
		skipped("handshakes/s")
	} else {
		s.printP3(row)
	}
	if s.p4 == nil {
		skipped("heartbeating sessions")
	} else {
		s.printP4(tw, row)
	}
	switch {
	case s.p5 == nil:
		skipped("PUT → route at ExaBGP p99")
	case s.p5.skipped != "":
		fmt.Fprintf(tw, "PUT → route at ExaBGP p99\t(skipped: %s)\t\t\n", s.p5.skipped)
	default:
		row("PUT → route at ExaBGP p99", fmt.Sprintf("%s (p50 %s, max %s, n=%d)", ms(s.p5.lat.p99), ms(s.p5.lat.p50), ms(s.p5.lat.max), s.p5.lat.n),
			"≤ "+ms(targetPutToRoute), s.p5.lat.n > 0 && s.p5.lat.p99 <= targetPutToRoute)
	}
	switch {
	case s.p6 == nil:
		skipped("restart: first answer")
	case s.p6.skipped != "":
		fmt.Fprintf(tw, "restart: first answer\t(skipped: %s)\t\t\n", s.p6.skipped)
	default:
		s.printP6(row)
	}
	switch {
	case s.p7 == nil:
		skipped("spoofed flood: dotsd RSS growth")
	case s.p7.skipped != "":
		fmt.Fprintf(tw, "spoofed flood: dotsd RSS growth\t(skipped: %s)\t\t\n", s.p7.skipped)
	default:
		s.printP7(tw, row)
	}
	if s.p8 == nil {
		skipped("fairness: B's PUT p50")
	} else {
		s.printP8(tw, row)
	}
	tw.Flush()
}

type rowFunc func(figure, measured, target string, ok bool)

func (s *summary) printP1(row rowFunc) {
	c := summarize(s.p1.create.lat)
	p1fail := s.p1.create.timeouts + s.p1.create.errors
	row("create p99, one session", fmt.Sprintf("%s (p50 %s, %d failed)", ms(c.p99), ms(c.p50), p1fail),
		"≤ "+ms(targetCreateP99)+", 0 failed", c.n > 0 && c.p99 <= targetCreateP99 && p1fail == 0)
}

func (s *summary) printP2(row rowFunc) {
	to, errs := s.p2.failures()
	note := ""
	if s.p2.sessions != targetCycleSessions {
		note = fmt.Sprintf(" [ran %d sessions]", s.p2.sessions)
	}
	row(fmt.Sprintf("cycles/s, %d sessions", s.p2.sessions), fmt.Sprintf("%.0f%s", s.p2.rate(), note),
		fmt.Sprintf("≥ %.0f over %d sessions", targetCycleRate, targetCycleSessions),
		s.p2.rate() >= targetCycleRate && s.p2.sessions >= targetCycleSessions)
	row("cycle timeouts / errors", fmt.Sprintf("%d / %d", to, errs), "0 / 0", to == 0 && errs == 0)
}

func (s *summary) printP3(row rowFunc) {
	row("handshakes/s, 32 parallel", fmt.Sprintf("%.0f (p50 %s, p99 %s, %d failed)", s.p3.rate(), ms(s.p3.hs.p50), ms(s.p3.hs.p99), s.p3.failed),
		fmt.Sprintf("≥ %.0f", targetHandshakeRate), s.p3.rate() >= targetHandshakeRate && s.p3.failed == 0)
}

func (s *summary) printP4(tw io.Writer, row rowFunc) {
	p4 := s.p4
	want := fmt.Sprintf("all %d, none lost", p4.sessions)
	if p4.sessions < targetHBSessions {
		want += fmt.Sprintf(" (bench: %d)", targetHBSessions)
	}
	row("heartbeating sessions up", fmt.Sprintf("%d of %d, %d lost", p4.up, p4.sessions, p4.lost), want,
		p4.up == p4.sessions && p4.lost == 0)
	measured := fmt.Sprintf("%s (%s per 1,000; HWM %s)", mib(p4.rssMax), mib(p4.rssMax*1000/int64(max(p4.up, 1))), mib(p4.hwm))
	rss := p4.rssMax
	if p4.up < targetHBSessions {
		rss = p4.projected()
		measured += fmt.Sprintf(", projected to %d: %s", targetHBSessions, mib(rss))
	}
	row("server RSS (max in window)", measured, "≤ 1.5 GiB at 20000", p4.up > 0 && rss <= targetRSS)
	missed, sent, errs := p4.ramp.missed+p4.window.missed, p4.ramp.sent+p4.window.sent, p4.ramp.errors+p4.window.errors
	row("missed client heartbeats", fmt.Sprintf("%d of %d sent (%d errors)", missed, sent, errs), "0",
		missed == 0 && errs == 0 && p4.window.sent > 0)
	fmt.Fprintf(tw, "server heartbeats received\t%d (%.2f per session)\t(informative)\t\n", p4.serverHB, float64(p4.serverHB)/float64(max(p4.up, 1)))
	fmt.Fprintf(tw, "load tool RSS (max)\t%s\t(informative)\t\n", mib(p4.toolMax))
}

func dash(n int) string { return strings.Repeat("-", n) }

func (s *summary) printP6(row rowFunc) {
	p6 := s.p6
	within := func(d time.Duration, ok bool) string {
		if !ok {
			return fmt.Sprintf("not in the %v watched (phase bound %v)", p6.watched.Round(time.Second), p6.bound)
		}
		return d.Round(time.Millisecond).String()
	}
	row(fmt.Sprintf("restart: first answer, %d FlowSpec", p6.n), within(p6.answer, p6.answer > 0),
		"≤ "+targetRestartAnswer.String(), p6.answer > 0 && p6.answer <= targetRestartAnswer)
	for _, name := range p6.routers {
		d, ok := p6.back[name]
		m := within(d, ok)
		if !ok {
			m = fmt.Sprintf("%d of %d, %s", p6.final[name].flows, p6.n, m)
		}
		if name == "frr" && (p6.frrDrops > 0 || p6.nlriMax > 0) {
			m += fmt.Sprintf(" (%d session resets, %d \"nlri length maximum\")", p6.frrDrops, p6.nlriMax)
		}
		row("restart: all rules back at "+name, m, "≤ "+targetRestartRoutes.String(), ok && d <= targetRestartRoutes)
	}
}

// figures renders the headline figures as "name value" lines (milliseconds
// and rates; -1 for a restart figure whose event did not happen within the
// bound). Phases not run, or skipped, are left out.
func (s *summary) figures() string {
	var b strings.Builder
	f := func(name string, v float64) { fmt.Fprintf(&b, "%s %.3f\n", name, v) }
	msf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	if s.p1 != nil {
		c := summarize(s.p1.create.lat)
		f("create_p99_ms", msf(c.p99))
		f("create_p50_ms", msf(c.p50))
	}
	if s.p2 != nil {
		f("cycles_per_s", s.p2.rate())
		to, errs := s.p2.failures()
		f("cycle_failures", float64(to+errs))
	}
	if s.p3 != nil {
		f("handshakes_per_s", s.p3.rate())
	}
	if s.p5 != nil && s.p5.skipped == "" {
		f("route_p99_ms", msf(s.p5.lat.p99))
		f("route_p50_ms", msf(s.p5.lat.p50))
	}
	if s.p6 != nil && s.p6.skipped == "" {
		v := -1.0
		if s.p6.answer > 0 {
			v = msf(s.p6.answer)
		}
		f("restart_answer_ms", v)
		for _, name := range s.p6.routers {
			v := -1.0
			if d, ok := s.p6.back[name]; ok {
				v = msf(d)
			}
			f("restart_"+name+"_ms", v)
		}
	}
	s.figures78(f)
	return b.String()
}
