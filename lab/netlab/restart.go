//go:build linux

package netlab

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/levee-dots/levee/dots"
)

// RestartOptions: under mitigation, scrubd is killed with SIGKILL, Down
// attack packets are sent while it is down, it is started again with the
// same configuration, and After more are sent once dotsd has given it the
// state again.
type RestartOptions struct {
	Down, After int // default 2000 each
}

// RestartResult is what the restart observed.
type RestartResult struct {
	Down, After int    // attack packets sent while scrubd was down, and after
	P1          uint64 // pkts-dropped before the kill
	// While scrubd was down: attack packets at the target, the rise of the
	// scrubber's drop counters, and whether `nft list table` still held
	// the mitigation's target and rule.
	ReachedDown   int
	ScrubbedDown  uint64
	TableHeldDown bool
	// The boot ids scrubd reported before and after.
	BootBefore, BootAfter string
	// The scrubber's ruleset (nft -j, without handles and counter values)
	// before the kill and after dotsd sent its state again.
	RulesBefore, RulesAfter string
	// scrubd's return path before the kill and after the restart.
	ReturnBefore, ReturnAfter ReturnState
	ReachedAfter              int      // attack packets at the target after the restart
	Samples                   []uint64 // every pkts-dropped dotsctl status reported, in order
	Final                     uint64   // the last of them
	// The mitigation's status while scrubd was down, and at the end.
	StatusDown, StatusAfter string
}

// Problems lists where the restart broke a promise: a packet let through,
// a rule lost, a counter that went back or a drop not counted.
func (r *RestartResult) Problems() []string {
	var p []string
	add := func(ok bool, format string, args ...any) {
		if !ok {
			p = append(p, "restart: "+fmt.Sprintf(format, args...))
		}
	}
	add(r.ReachedDown == 0, "%d of %d attack packets reached the target while scrubd was down", r.ReachedDown, r.Down)
	add(r.ScrubbedDown == uint64(r.Down), "while scrubd was down the drop counters rose by %d, %d packets were sent", r.ScrubbedDown, r.Down)
	add(r.TableHeldDown, "while scrubd was down nft list table no longer held the mitigation")
	add(r.BootAfter != "" && r.BootAfter != r.BootBefore, "boot id %q before, %q after: not a new boot", r.BootBefore, r.BootAfter)
	add(r.RulesBefore != "" && r.RulesBefore == r.RulesAfter, "the ruleset after the restart differs:\n%s", lineDiff(r.RulesBefore, r.RulesAfter))
	add(r.ReturnBefore.String() == r.ReturnAfter.String(), "scrubd's return path before the kill: %s; after the restart: %s", r.ReturnBefore, r.ReturnAfter)
	add(r.StatusAfter == statusText(dots.Scope{Status: dots.Ptr(dots.StatusMitigated)}), "after the restart the status is %s, want 2", r.StatusAfter)
	add(r.ReachedAfter == 0, "%d of %d attack packets reached the target after the restart", r.ReachedAfter, r.After)
	for i := 1; i < len(r.Samples); i++ {
		add(r.Samples[i] >= r.Samples[i-1], "pkts-dropped went back from %d to %d (samples %v)", r.Samples[i-1], r.Samples[i], r.Samples)
	}
	want := r.P1 + uint64(r.Down) + uint64(r.After)
	add(r.Final == want, "pkts-dropped ended at %d, want P1+N2+N3 = %d+%d+%d = %d", r.Final, r.P1, r.Down, r.After, want)
	return p
}

// lineDiff lists the lines only in a (-) and only in b (+).
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, x := range al {
		if !slices.Contains(bl, x) {
			out = append(out, "- "+x)
		}
	}
	for _, x := range bl {
		if !slices.Contains(al, x) {
			out = append(out, "+ "+x)
		}
	}
	return strings.Join(out, "\n")
}

var stateWith = regexp.MustCompile(`"state set".*mitigations=1`)

// restart kills scrubd under mitigation, floods while it is down, starts
// it again and floods again, sampling pkts-dropped all along.
func (s *scenario) restart(ctx context.Context, o RestartOptions) error {
	if o.Down <= 0 {
		o.Down = 2000
	}
	if o.After <= 0 {
		o.After = 2000
	}
	r := &RestartResult{Down: o.Down, After: o.After, P1: s.res.Attack.PktsDropped, BootBefore: s.boot}
	s.res.Restart = r
	r.Samples = append(r.Samples, r.P1)
	var err error
	if r.RulesBefore, err = s.l.NFTRuleset(ctx, Scrubber); err != nil {
		return err
	}
	if r.ReturnBefore, err = s.l.scrubberReturn(); err != nil {
		return err
	}
	pid := s.scrubd.Pid()
	if err := s.scrubd.Kill(); err != nil {
		return err
	}
	s.step("scrubd killed (SIGKILL, pid %d) with pkts-dropped %d", pid, r.P1)
	if err := s.floodDown(ctx, r); err != nil {
		return err
	}
	if err := s.startScrubd(); err != nil {
		return err
	}
	r.BootAfter = s.boot
	if err := s.scrubd.WaitFor("the state again", 15*time.Second, func() bool { return stateWith.MatchString(s.scrubd.Out.String()) }); err != nil {
		return err
	}
	if r.RulesAfter, err = s.l.NFTRuleset(ctx, Scrubber); err != nil {
		return err
	}
	if r.ReturnAfter, err = s.l.scrubberReturn(); err != nil {
		return err
	}
	s.step("dotsd noticed the new boot %s and sent its state again; the scrubber's ruleset is %s, its return path %s",
		r.BootAfter, sameness(r.RulesBefore == r.RulesAfter), sameness(r.ReturnBefore.String() == r.ReturnAfter.String()))
	if err := s.sample(ctx, r, r.P1+uint64(r.Down)); err != nil {
		return err
	}
	at := s.count.Count()
	if _, err := s.flood(o.After, 0); err != nil {
		return err
	}
	if err := s.sample(ctx, r, r.P1+uint64(r.Down+r.After)); err != nil {
		return err
	}
	r.ReachedAfter = s.count.Count() - at
	sc, err := s.status(ctx, "mitigated again", func(sc dots.Scope) bool { return sc.Status != nil && *sc.Status == dots.StatusMitigated })
	r.StatusAfter = statusText(sc)
	s.step("after the restart: attack %d packets sent, %d reached the target; pkts-dropped %d = %d+%d+%d; samples %v; status %s",
		o.After, r.ReachedAfter, r.Final, r.P1, r.Down, r.After, r.Samples, r.StatusAfter)
	return err
}

func sameness(same bool) string {
	if same {
		return "the same as before the kill"
	}
	return "DIFFERENT from before the kill"
}

// floodDown floods while scrubd is down and checks the kernel still
// filters.
func (s *scenario) floodDown(ctx context.Context, r *RestartResult) error {
	r.TableHeldDown = s.l.labTableHolds(ctx)
	c0, err := s.l.ScrubberDropped()
	if err != nil {
		return err
	}
	at := s.count.Count()
	if _, err := s.flood(r.Down, 0); err != nil {
		return err
	}
	sc, err := s.client.Status(ctx, s.res.MID) // dotsd answers while the node is down
	down := fmt.Sprintf("%s status: %v", s.who, err)
	if err == nil {
		p, _ := dropped(sc)
		r.Samples = append(r.Samples, p)
		r.StatusDown = statusText(sc)
		down = fmt.Sprintf("%s status: %s", s.who, scopeText(sc))
		if sc.Note != "" {
			down += fmt.Sprintf(" (note %q)", sc.Note)
		}
	}
	c1, err := s.l.ScrubberDropped()
	if err != nil {
		return err
	}
	r.ScrubbedDown = c1.Packets - c0.Packets
	r.ReachedDown = s.count.Count() - at
	if err := s.ping("while scrubd is down", 5); err != nil {
		return err
	}
	held := "still holds"
	if !r.TableHeldDown {
		held = "NO LONGER holds"
	}
	s.step("scrubd down: attack %d packets sent, %d reached the target, kernel counters dropped %d; nft list table %s the mitigation; legit echo 5/5 answered; %s",
		r.Down, r.ReachedDown, r.ScrubbedDown, held, down)
	return nil
}

// sample reads pkts-dropped until it reaches want (up to 15 s), recording
// every value.
func (s *scenario) sample(ctx context.Context, r *RestartResult, want uint64) error {
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if sc, err := s.client.Status(ctx, s.res.MID); err == nil {
			p, _ := dropped(sc)
			if n := len(r.Samples); n == 0 || r.Samples[n-1] != p {
				r.Samples = append(r.Samples, p)
			}
			r.Final = p
			if p >= want {
				return nil
			}
		}
		if time.Now().After(end) {
			return fmt.Errorf("netlab: restart: pkts-dropped %d after 15s, want %d (samples %v)", r.Final, want, r.Samples)
		}
	}
}
