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
// requests acknowledged within 10 s under 50% loss each way.
const (
	targetLossOneShot = 0.90
	targetLossAgent   = 0.99
	lossWindow        = 10 * time.Second
)

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
		for _, agent := range []bool{false, true} {
			how, target := "one-shot `dotsctl mitigate` (each its own session)", targetLossOneShot
			if agent {
				how, target = "`dotsctl mitigate` through `dotsctl agent` (its session up before the loss)", targetLossAgent
			}
			fmt.Fprintf(stdout, "== loss lab: %d%% random loss each way, %d %s, one every 250ms\n", loss, *n, how)
			res, err := netlab.RunLoss(ctx, netlab.LossOptions{Bins: bins, Loss: loss, Requests: *n, Spacing: 250 * time.Millisecond,
				Window: lossWindow, Agent: agent, Logf: func(f string, a ...any) { fmt.Fprintf(stdout, "  "+f+"\n", a...) }})
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
			name := "one-shot"
			measured := fmt.Sprintf("%d of %d (%.0f%%), %d held by dotsd", len(res.Acked), res.Requests, 100*res.AckedShare(), res.Stored)
			if agent {
				name = "agent"
				measured += fmt.Sprintf(", %d served by the agent", res.Served)
			}
			targetText, verdict := "(informative)", ""
			if loss == 50 {
				targetText, verdict = fmt.Sprintf("≥ %.0f%%", 100*target), "FAIL"
				if res.AckedShare() >= target {
					verdict = "PASS"
				}
			}
			rows = append(rows,
				row{fmt.Sprintf("%d%% loss: %s acked ≤ 10s", loss, name), measured, targetText, verdict},
				row{fmt.Sprintf("%d%% loss: %s median ack", loss, name), res.Median().Round(time.Millisecond).String(), "(informative)", ""})
		}
	}
	fmt.Fprintln(stdout, "\n== summary")
	fmt.Fprintf(stdout, "%-32s %-72s %-14s %s\n", "figure", "measured", "target", "verdict")
	for _, r := range rows {
		fmt.Fprintf(stdout, "%-32s %-72s %-14s %s\n", r.figure, r.measured, r.target, r.verdict)
	}
	return nil
}

// failureCause names what a failed one-shot request ran into.
func failureCause(msg string) string {
	switch {
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
