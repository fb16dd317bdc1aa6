package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

func cmdSession(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return errors.New("session: use get, set or reset")
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
		return sessionSet(rctx, g, c, args[1:])
	case "reset":
		r, err := c.DeleteConfig(rctx)
		if err != nil {
			return err
		}
		if err := refused(r); err != nil {
			return err
		}
		return printSimple(g, "session configuration reset to the server defaults", r)
	}
	return fmt.Errorf("session: unknown subcommand %q (get, set or reset)", args[0])
}

func sessionSet(ctx context.Context, g *globals, c *dotsclient.Client, args []string) error {
	fs := flag.NewFlagSet("session set", flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	sid := fs.Uint("sid", 0, "session configuration identifier (must increase)")
	hb := fs.Int("heartbeat-interval", -1, "mitigating-config heartbeat interval (s)")
	missing := fs.Int("missing-hb-allowed", -1, "mitigating-config missing heartbeats allowed")
	idleHB := fs.Int("idle-heartbeat-interval", -1, "idle-config heartbeat interval (s, 0 disables)")
	idleMissing := fs.Int("idle-missing-hb-allowed", -1, "idle-config missing heartbeats allowed")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *sid == 0 {
		return errors.New("session set: --sid N is required (a number higher than the current sid)")
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
		return errors.New("session set: give at least one value to change")
	}
	r, err := c.PutConfig(ctx, uint32(*sid), sc)
	if err != nil {
		return err
	}
	if err := refused(r); err != nil {
		return err
	}
	return printSimple(g, fmt.Sprintf("session configuration sid %d set (%s)", *sid, r.Code), r)
}

// cmdAgent keeps a session: heartbeats at the negotiated interval; after
// missing-hb-allowed unanswered heartbeats the session is declared lost and
// re-established, no more often than every 60 s (RFC 9132 §4.7).
func cmdAgent(ctx context.Context, g *globals, args []string) error {
	if len(args) > 0 {
		return errors.New("agent: takes no arguments")
	}
	const reconnectDelay = 60 * time.Second
	cfg, err := loadCtlConfig(g.config)
	if err != nil {
		return err
	}
	sock, err := listenAgent(g, cfg)
	if err != nil {
		return err
	}
	go sock.serve(ctx)
	defer sock.close()
	g.sessions = dotsclient.NewSessionCache(0) // a reconnect resumes where the server allows it
	fmt.Fprintf(g.stdout, "%s agent: serving dotsctl commands on %s\n", time.Now().Format(time.TimeOnly), sock.path)
	for {
		err := agentSession(ctx, g, sock)
		if ctx.Err() != nil {
			return nil
		}
		fmt.Fprintf(g.stderr, "%s agent: %v; reconnecting in %s\n", time.Now().Format(time.TimeOnly), err, reconnectDelay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(reconnectDelay):
		}
	}
}

func agentSession(ctx context.Context, g *globals, sock *agentServer) error {
	c, _, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	sock.cur.Store(c)
	defer sock.cur.Store(nil)
	interval, missing := 30*time.Second, 15
	rctx, cancel := g.reqCtx(ctx)
	if r, err := c.GetConfig(rctx, nil); err == nil && r.Body != nil && r.Body.SignalConfig != nil {
		if set := r.Body.SignalConfig.IdleConfig; set != nil {
			if set.HeartbeatInterval != nil && set.HeartbeatInterval.CurrentValue != nil && *set.HeartbeatInterval.CurrentValue > 0 {
				interval = time.Duration(*set.HeartbeatInterval.CurrentValue) * time.Second
			}
			if set.MissingHBAllowed != nil && set.MissingHBAllowed.CurrentValue != nil {
				missing = int(*set.MissingHBAllowed.CurrentValue)
			}
		}
	}
	cancel()
	fmt.Fprintf(g.stdout, "%s agent: session up over %s to %s (cuid %s), heartbeat every %s\n",
		time.Now().Format(time.TimeOnly), c.Transport(), c.Remote(), c.CUID(), interval)
	t := time.NewTicker(interval)
	defer t.Stop()
	unanswered := 0
	for {
		peerOK := !c.LastServerHeartbeat().IsZero() && time.Since(c.LastServerHeartbeat()) <= 2*interval
		r, err := c.Heartbeat(ctx, peerOK)
		switch {
		case err == nil && r.Code == dots.Changed:
			unanswered = 0
		case err == nil:
			return fmt.Errorf("heartbeat answered %s %s", r.Code, r.Diag)
		default:
			unanswered++
			fmt.Fprintf(g.stderr, "%s agent: heartbeat %d unanswered: %v\n", time.Now().Format(time.TimeOnly), unanswered, err)
			if unanswered >= missing {
				return fmt.Errorf("%d heartbeats unanswered: session lost", unanswered)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Done():
			return errors.New("the session was closed")
		case <-t.C:
		}
	}
}
