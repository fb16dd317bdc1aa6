package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

// sessionSubcommands are the subcommands of session.
var sessionSubcommands = []string{"get", "set", "reset"}

func cmdSession(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return errors.New("session: use get, set or reset")
	}
	var set func(context.Context, *dotsclient.Client) error
	switch args[0] {
	case "get", "reset":
	case "set":
		var err error
		if set, err = sessionSet(g, args[1:]); err != nil { // before dialing: a bad flag costs no session
			return err
		}
	default:
		return fmt.Errorf("session: unknown subcommand %q (get, set or reset)", args[0])
	}
	c, _, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	rctx, cancel := g.reqCtx(ctx)
	defer cancel()
	switch args[0] {
	case "get":
		r, err := c.GetConfig(rctx, nil)
		if err != nil {
			return err
		}
		if err := refused(r); err != nil {
			return err
		}
		return printConfig(g, r)
	case "set":
		return set(rctx, c)
	}
	r, err := c.DeleteConfig(rctx)
	if err != nil {
		return err
	}
	if err := refused(r); err != nil {
		return err
	}
	return printSimple(g, "session configuration reset to the server defaults", r)
}

// sessionSet parses the arguments of session set and returns what sends it.
func sessionSet(g *globals, args []string) (func(context.Context, *dotsclient.Client) error, error) {
	fs := flag.NewFlagSet("session set", flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	sid := fs.Uint("sid", 0, "session configuration identifier (must increase)")
	hb := fs.Int("heartbeat-interval", -1, "mitigating-config heartbeat interval (s)")
	missing := fs.Int("missing-hb-allowed", -1, "mitigating-config missing heartbeats allowed")
	idleHB := fs.Int("idle-heartbeat-interval", -1, "idle-config heartbeat interval (s, 0 disables)")
	idleMissing := fs.Int("idle-missing-hb-allowed", -1, "idle-config missing heartbeats allowed")
	if _, err := parseInterleaved(fs, args); err != nil {
		return nil, err
	}
	if *sid == 0 {
		return nil, errors.New("session set: --sid N is required (a number higher than the current sid)")
	}
	set := func(v int) *dots.Uint16Param {
		if v < 0 {
			return nil
		}
		return &dots.Uint16Param{CurrentValue: dots.Ptr(uint16(v))}
	}
	sc := &dots.SignalConfig{}
	if *hb >= 0 || *missing >= 0 {
		sc.MitigatingConfig = &dots.ConfigSet{HeartbeatInterval: set(*hb), MissingHBAllowed: set(*missing)}
	}
	if *idleHB >= 0 || *idleMissing >= 0 {
		sc.IdleConfig = &dots.ConfigSet{HeartbeatInterval: set(*idleHB), MissingHBAllowed: set(*idleMissing)}
	}
	if sc.MitigatingConfig == nil && sc.IdleConfig == nil {
		return nil, errors.New("session set: give at least one value to change")
	}
	return func(ctx context.Context, c *dotsclient.Client) error {
		r, err := c.PutConfig(ctx, uint32(*sid), sc)
		if err != nil {
			return err
		}
		if err := refused(r); err != nil {
			return err
		}
		return printSimple(g, fmt.Sprintf("session configuration sid %d set (%s)", *sid, r.Code), r)
	}, nil
}
