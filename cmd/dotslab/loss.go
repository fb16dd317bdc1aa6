//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/levee-dots/levee/lab/netlab"
)

// The targets of the loss bench (issue 10): the share of mitigation
// requests acknowledged within 10 s under 50% loss each way. One-shot
// commands meet theirs with heavy-loss: true; the row with the defaults
// (the RFCs' pacing) is informative.
const (
	targetLossOneShot = 0.90
	targetLossAgent   = 0.99
	lossWindow        = 10 * time.Second
)

// lossMode is one way of sending the bench's requests.
type lossMode struct {
	name, how        string
	agent, heavyLoss bool
	target           float64 // at 50% loss; 0: informative
}

var lossModes = []lossMode{
	{name: "one-shot", how: "one-shot `dotsctl mitigate` (each its own session, default pacing)"},
	{name: "one-shot heavy-loss", how: "one-shot `dotsctl mitigate` with heavy-loss: true (each its own session)",
		heavyLoss: true, target: targetLossOneShot},
	{name: "agent", how: "`dotsctl mitigate` through `dotsctl agent` (its session up before the loss)",
		agent: true, target: targetLossAgent},
}

// benchLoss runs the loss lab at each loss rate and prints the figures
// beside their targets.
func benchLoss(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dotslab bench loss", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin", "directory with dotsd and dotsctl (make build)")
	rates := fs.String("loss", "50,25", "loss percentages each way, comma-separated")
	n := fs.Int("requests", 60, "one-shot mitigation requests per loss rate (1 to 250)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench loss: unexpected %q", fs.Args())
	}
	var losses []int
	for _, f := range strings.Split(*rates, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 0 || v > 90 {
			return fmt.Errorf("--loss %q: want percentages from 0 to 90, e.g. 50,25", *rates)
		}
		losses = append(losses, v)
	}
	if os.Geteuid() != 0 {
		return errNotRoot
	}
	bins, err := absBins(*bin)
	if err != nil {
		return err
	}
	type row struct{ figure, measured, target, verdict string }
	var rows []row
	for _, loss := range losses {
		for _, m := range lossModes {
			fmt.Fprintf(stdout, "== loss lab: %d%% random loss each way, %d %s, one every 250ms\n", loss, *n, m.how)
			res, err := netlab.RunLoss(ctx, netlab.LossOptions{Bins: bins, Loss: loss, Requests: *n, Spacing: 250 * time.Millisecond,
				Window: lossWindow, Agent: m.agent, HeavyLoss: m.heavyLoss, Logf: func(f string, a ...any) { fmt.Fprintf(stdout, "  "+f+"\n", a...) }})
			if err != nil {
				if errors.Is(err, netlab.ErrNotRoot) {
					return errNotRoot
				}
				return err
			}
			causes := map[string]int{}
			for _, f := range res.Failed {
				causes[failureCause(f)]++
			}
			for c, k := range causes {
				fmt.Fprintf(stdout, "  not acknowledged: %d × %s\n", k, c)
			}
			measured := fmt.Sprintf("%d of %d (%.0f%%), %d held by dotsd", len(res.Acked), res.Requests, 100*res.AckedShare(), res.Stored)
			if m.agent {
				measured += fmt.Sprintf(", %d served by the agent", res.Served)
			}
			targetText, verdict := "(informative)", ""
			if loss == 50 && m.target > 0 {
				targetText, verdict = fmt.Sprintf("≥ %.0f%%", 100*m.target), "FAIL"
				if res.AckedShare() >= m.target {
					verdict = "PASS"
				}
			}
			rows = append(rows,
				row{fmt.Sprintf("%d%% loss: %s acked ≤ 10s", loss, m.name), measured, targetText, verdict},
				row{fmt.Sprintf("%d%% loss: %s median ack", loss, m.name), res.Median().Round(time.Millisecond).String(), "(informative)", ""})
		}
	}
	fmt.Fprintln(stdout, "\n== summary")
	fmt.Fprintf(stdout, "%-43s %-72s %-14s %s\n", "figure", "measured", "target", "verdict")
	for _, r := range rows {
		fmt.Fprintf(stdout, "%-43s %-72s %-14s %s\n", r.figure, r.measured, r.target, r.verdict)
	}
	return nil
}

// failureCause names what a failed one-shot request ran into.
func failureCause(msg string) string {
	switch {
	case strings.Contains(msg, "signal-channel sessions"):
		return "5.03: the client is at dotsd's session limit (sessions of the commands before it)"
	case strings.Contains(msg, "connecting"):
		return "no session within the window (DTLS and TLS handshakes lost)"
	case strings.Contains(msg, "PUT"):
		return "session up, no answer to the request within the window"
	case strings.Contains(msg, "killed"):
		return "dotsctl still running past the window (handshake, then the request)"
	case strings.Contains(msg, "answered after"):
		return "answered after the window"
	}
	if len(msg) > 160 {
		msg = msg[:160] + "…"
	}
	return "other: " + msg
}
