package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

func printJSON(g *globals, v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonAnswer is the -o json form of a server answer.
type jsonAnswer struct {
	Code string        `json:"code"`
	MID  *uint32       `json:"mid,omitempty"`
	Body *dots.Message `json:"body,omitempty"`
}

func printSimple(g *globals, text string, r *dotsclient.Response) error {
	if g.output == "json" {
		return printJSON(g, jsonAnswer{Code: r.Code.String(), Body: r.Body})
	}
	_, err := fmt.Fprintln(g.stdout, text)
	return err
}

func printMitigateAnswer(g *globals, mid uint32, r *dotsclient.Response) error {
	if g.output == "json" {
		return printJSON(g, jsonAnswer{Code: r.Code.String(), MID: &mid, Body: r.Body})
	}
	verb := "created"
	if r.Code == dots.Changed {
		verb = "refreshed"
	}
	fmt.Fprintf(g.stdout, "mid %d %s (%s)\n", mid, verb, r.Code)
	if r.Body == nil || r.Body.MitigationScope == nil || len(r.Body.MitigationScope.Scope) == 0 {
		return nil
	}
	sc := r.Body.MitigationScope.Scope[0]
	if sc.Lifetime != nil {
		fmt.Fprintf(g.stdout, "lifetime granted: %s\n", lifetime(*sc.Lifetime))
	}
	if ci := sc.ConflictInformation; ci != nil {
		fmt.Fprintf(g.stdout, "conflict: %s\n", conflict(ci))
	}
	if sc.Note != "" {
		fmt.Fprintf(g.stdout, "note: %s\n", sc.Note)
	}
	return nil
}

func lifetime(s int64) string {
	if s < 0 {
		return "indefinite"
	}
	return (time.Duration(s) * time.Second).String()
}

func conflict(ci *dots.ConflictInformation) string {
	var parts []string
	if ci.ConflictStatus != nil {
		parts = append(parts, ci.ConflictStatus.String())
	}
	if ci.ConflictCause != nil {
		parts = append(parts, ci.ConflictCause.String())
	}
	if ci.ConflictScope != nil && len(ci.ConflictScope.TargetPrefix) > 0 {
		parts = append(parts, "on "+strings.Join(ci.ConflictScope.TargetPrefix, ","))
	}
	return strings.Join(parts, ", ")
}

func printStatus(g *globals, r *dotsclient.Response) error {
	if g.output == "json" {
		return printJSON(g, jsonAnswer{Code: r.Code.String(), Body: r.Body})
	}
	if r.Body == nil || r.Body.MitigationScope == nil {
		_, err := fmt.Fprintln(g.stdout, "no mitigations")
		return err
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MID\tSTATUS\tLIFETIME\tTARGETS\tSTARTED\tDROPPED\tNOTE")
	for _, s := range r.Body.MitigationScope.Scope {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", opt(s.MID), statusText(s), lifetimeOpt(s.Lifetime),
			targets(s), started(s.MitigationStart), dropped(s), note(s))
	}
	return tw.Flush()
}

func opt(p *uint32) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func statusText(s dots.Scope) string {
	if s.Status == nil {
		return "-"
	}
	return s.Status.String()
}

func lifetimeOpt(p *int64) string {
	if p == nil {
		return "-"
	}
	return lifetime(*p)
}

func targets(s dots.Scope) string {
	var parts []string
	parts = append(parts, s.TargetPrefix...)
	parts = append(parts, s.TargetFQDN...)
	parts = append(parts, s.TargetURI...)
	t := strings.Join(parts, ",")
	var ports []string
	for _, p := range s.TargetPortRange {
		if p.UpperPort != nil && *p.UpperPort != p.LowerPort {
			ports = append(ports, fmt.Sprintf("%d-%d", p.LowerPort, *p.UpperPort))
		} else {
			ports = append(ports, fmt.Sprint(p.LowerPort))
		}
	}
	if len(ports) > 0 {
		t += " port " + strings.Join(ports, ",")
	}
	if len(s.TargetProtocol) > 0 {
		t += fmt.Sprintf(" proto %v", s.TargetProtocol)
	}
	if s.TriggerMitigation != nil && !*s.TriggerMitigation {
		t += " (on signal loss)"
	}
	return t
}

func started(p *dots.U64) string {
	if p == nil {
		return "-"
	}
	return time.Unix(int64(*p), 0).UTC().Format(time.DateTime)
}

func dropped(s dots.Scope) string {
	if s.BytesDropped == nil && s.PktsDropped == nil {
		return "-"
	}
	var b, p uint64
	if s.BytesDropped != nil {
		b = uint64(*s.BytesDropped)
	}
	if s.PktsDropped != nil {
		p = uint64(*s.PktsDropped)
	}
	out := fmt.Sprintf("%d B / %d pkt", b, p)
	if s.BpsDropped != nil || s.PpsDropped != nil {
		var bps, pps uint64
		if s.BpsDropped != nil {
			bps = uint64(*s.BpsDropped)
		}
		if s.PpsDropped != nil {
			pps = uint64(*s.PpsDropped)
		}
		out += fmt.Sprintf(" (%d bps / %d pps)", bps, pps)
	}
	return out
}

func note(s dots.Scope) string {
	parts := []string{}
	if s.ConflictInformation != nil {
		parts = append(parts, "conflict: "+conflict(s.ConflictInformation))
	}
	if s.AttackStatus != nil {
		parts = append(parts, "client reports "+s.AttackStatus.String())
	}
	if s.Note != "" {
		parts = append(parts, s.Note)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

func printConfig(g *globals, r *dotsclient.Response) error {
	if g.output == "json" {
		return printJSON(g, jsonAnswer{Code: r.Code.String(), Body: r.Body})
	}
	sc := r.Body.SignalConfig
	if sc == nil {
		return fmt.Errorf("the server sent no signal-config")
	}
	if sc.SID != nil {
		fmt.Fprintf(g.stdout, "sid %d\n", *sc.SID)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SET\tPARAMETER\tCURRENT\tMIN\tMAX")
	for _, set := range []struct {
		name string
		cs   *dots.ConfigSet
	}{{"mitigating", sc.MitigatingConfig}, {"idle", sc.IdleConfig}} {
		if set.cs == nil {
			continue
		}
		u := func(name string, p *dots.Uint16Param) {
			if p != nil {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", set.name, name, u16(p.CurrentValue), u16(p.MinValue), u16(p.MaxValue))
			}
		}
		d := func(name string, p *dots.DecimalParam) {
			if p != nil {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", set.name, name, dec(p.CurrentValue), dec(p.MinValue), dec(p.MaxValue))
			}
		}
		u("heartbeat-interval", set.cs.HeartbeatInterval)
		u("missing-hb-allowed", set.cs.MissingHBAllowed)
		u("probing-rate", set.cs.ProbingRate)
		u("max-retransmit", set.cs.MaxRetransmit)
		d("ack-timeout", set.cs.AckTimeout)
		d("ack-random-factor", set.cs.AckRandomFactor)
	}
	if r.MaxAge != nil {
		defer fmt.Fprintf(g.stdout, "valid for %s (Max-Age)\n", time.Duration(*r.MaxAge)*time.Second)
	}
	return tw.Flush()
}

func u16(p *uint16) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func dec(p *dots.Decimal) string {
	if p == nil {
		return "-"
	}
	return p.String()
}
