package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

func cmdMitigate(ctx context.Context, g *globals, args []string) error {
	fs := flag.NewFlagSet("mitigate", flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	var targets, ports, protos, fqdns, uris, aliases, acls multiFlag
	fs.Var(&targets, "target", "target prefix, e.g. 203.0.113.10/32 (repeatable)")
	fs.Var(&ports, "port", "target port or range, e.g. 443 or 443-444 (repeatable)")
	fs.Var(&protos, "proto", "target protocol: tcp, udp, icmp or a number (repeatable)")
	fs.Var(&fqdns, "fqdn", "target domain name (repeatable)")
	fs.Var(&uris, "uri", "target URI (repeatable)")
	fs.Var(&aliases, "alias", "alias-name made on the data channel (dotsctl alias create) (repeatable)")
	fs.Var(&acls, "acl", "NAME=ACTIVATION: set the activation-type of a data-channel ACL, RFC 9133 (repeatable)")
	lifetime := fs.String("lifetime", "3600", "lifetime in seconds, or indefinite")
	onLoss := fs.Bool("on-signal-loss", false, "preconfigure: activate only when the signal channel is lost (trigger-mitigation=false)")
	midFlag := fs.Uint("mid", 0, "use this mid instead of the next one from the counter (refresh)")
	counter := fs.String("countermeasure", "", "ask for rtbh, flowspec or scrubbing (granted only where the server's policy allows)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if len(targets)+len(fqdns)+len(uris)+len(aliases) == 0 {
		return errors.New("mitigate: give at least one --target, --fqdn, --uri or --alias")
	}
	sc := dots.Scope{TargetPrefix: targets, TargetFQDN: fqdns, TargetURI: uris, AliasName: aliases}
	for _, a := range acls {
		ac, err := parseACLControl(a)
		if err != nil {
			return err
		}
		sc.ACLList = append(sc.ACLList, ac)
	}
	for _, p := range ports {
		pr, err := parsePort(p)
		if err != nil {
			return err
		}
		sc.TargetPortRange = append(sc.TargetPortRange, pr)
	}
	for _, p := range protos {
		n, err := parseProto(p)
		if err != nil {
			return err
		}
		sc.TargetProtocol = append(sc.TargetProtocol, n)
	}
	lt, err := parseLifetime(*lifetime)
	if err != nil {
		return err
	}
	sc.Lifetime = &lt
	if *onLoss {
		sc.TriggerMitigation = dots.Ptr(false)
	}
	switch *counter {
	case "", "rtbh", "flowspec", "scrubbing":
		sc.Countermeasure = *counter
	default:
		return fmt.Errorf("--countermeasure %q: use rtbh, flowspec or scrubbing", *counter)
	}
	c, cfg, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer g.close(c)
	mid := uint32(*midFlag)
	if mid == 0 {
		rctx, cancel := g.reqCtx(ctx)
		mid, err = nextMID(cfg.State, cfg.rollover(rctx, c))
		cancel()
		if err != nil {
			return err
		}
	}
	rctx, cancel := g.reqCtx(ctx)
	defer cancel()
	r, err := c.Mitigate(rctx, mid, sc)
	if err != nil {
		return err
	}
	if err := refused(r); err != nil {
		return fmt.Errorf("mid %d: %w", mid, err)
	}
	return printMitigateAnswer(g, mid, r)
}

func cmdStatus(ctx context.Context, g *globals, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	watch := fs.Bool("watch", false, "follow changes (CoAP Observe) until interrupted")
	interval := intervalFlag{d: defaultWatchInterval}
	fs.Var(&interval, "interval", "with --watch: read the status again this often (at least 1s)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	var mid *uint32
	if len(pos) > 1 {
		return errors.New("status: at most one MID")
	}
	if len(pos) == 1 {
		m, err := parseMID(pos[0])
		if err != nil {
			return err
		}
		mid = &m
	}
	if interval.set && !*watch {
		return errors.New("status: --interval applies only with --watch (add --watch, or drop --interval)")
	}
	if *watch {
		return watchStatus(ctx, g, mid, interval.d)
	}
	c, _, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer g.close(c)
	rctx, cancel := g.reqCtx(ctx)
	defer cancel()
	r, err := c.Status(rctx, mid, "")
	if err != nil {
		return err
	}
	if mid == nil && r.Code == dots.NotFound {
		return printStatus(g, &dotsclient.Response{Code: dots.Content})
	}
	if err := refused(r); err != nil {
		return err
	}
	return printStatus(g, r)
}

func cmdWithdraw(ctx context.Context, g *globals, args []string) error {
	if len(args) != 1 {
		return errors.New("withdraw: give exactly one MID")
	}
	mid, err := parseMID(args[0])
	if err != nil {
		return err
	}
	c, _, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer g.close(c)
	rctx, cancel := g.reqCtx(ctx)
	defer cancel()
	r, err := c.Withdraw(rctx, mid)
	if err != nil {
		return err
	}
	if err := refused(r); err != nil {
		return err
	}
	return printSimple(g, fmt.Sprintf("mid %d withdrawn (%s)", mid, r.Code), r)
}

func cmdEfficacy(ctx context.Context, g *globals, args []string) error {
	if len(args) != 2 {
		return errors.New("efficacy: give MID and under-attack or mitigated")
	}
	mid, err := parseMID(args[0])
	if err != nil {
		return err
	}
	word := args[1]
	if word == "mitigated" {
		word = "attack-successfully-mitigated"
	}
	as, err := dots.ParseAttackStatus(word)
	if err != nil {
		return fmt.Errorf("efficacy: %q: use under-attack or mitigated", args[1])
	}
	c, _, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer g.close(c)
	rctx, cancel := g.reqCtx(ctx)
	defer cancel()
	// The efficacy update repeats the request's parameters: fetch them.
	cur, err := c.Status(rctx, &mid, "c")
	if err != nil {
		return err
	}
	if err := refused(cur); err != nil {
		return err
	}
	sc := cur.Body.MitigationScope.Scope[0]
	sc.MID, sc.Lifetime = nil, nil
	r, err := c.Efficacy(rctx, mid, sc, as)
	if err != nil {
		return err
	}
	if err := refused(r); err != nil {
		return err
	}
	return printSimple(g, fmt.Sprintf("mid %d: efficacy %s reported (%s)", mid, as, r.Code), r)
}
