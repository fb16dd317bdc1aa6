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
}

// The targets of 'make bench'.
const (
	targetCreateP99     = 2 * time.Millisecond
	targetCycleRate     = 3000.0
	targetCycleSessions = 100
	targetHandshakeRate = 1000.0
	targetHBSessions    = 20000
	targetRSS           = int64(1536) << 20 // 1.5 GiB for 20,000 sessions
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
