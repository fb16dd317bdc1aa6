package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

// cmdAgent keeps a session: heartbeats at the negotiated interval; after
// missing-hb-allowed unanswered heartbeats the session is declared lost and
// re-established, no more often than every 60 s (RFC 9132 §4.7). While it
// holds the session it refreshes the client's mitigation requests
// (§4.4.1), follows the session configuration (§4.5), moves back to DTLS
// from a TLS fallback (§4.3) and follows redirects at once (§4.6).
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
	fmt.Fprintf(g.stdout, "%s agent: serving dotsctl commands on %s\n", stamp(), sock.path)
	life, d := newAgentLife(g.stdout), newAgentDialer(g)
	for {
		err := agentSession(ctx, g, sock, life, d)
		if ctx.Err() != nil {
			return nil
		}
		if d.follow(err) && !d.ignored {
			fmt.Fprintf(g.stderr, "%s agent: %v; following it\n", stamp(), err)
			continue
		}
		fmt.Fprintf(g.stderr, "%s agent: %v; reconnecting in %s\n", stamp(), err, reconnectDelay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(reconnectDelay):
		}
	}
}

// hbText describes a heartbeat set.
func hbText(set hbSet, name string) string {
	if set.interval == 0 {
		return "no heartbeats (" + name + ")"
	}
	return fmt.Sprintf("heartbeat every %s (%s)", set.interval, name)
}

// agentSession runs one session until it ends, and says why.
func agentSession(ctx context.Context, g *globals, sock *agentServer, life *agentLife, d *agentDialer) error {
	c, cc, err := d.dial(ctx, life.active())
	if err != nil {
		return err
	}
	defer func() { c.Close() }() // c is the session of the moment
	sock.cur.Store(c)
	defer sock.cur.Store(nil)
	if err := agentSync(ctx, g, life, c, true); err != nil {
		return err
	}
	set, name := life.hb()
	fmt.Fprintf(g.stdout, "%s agent: session up over %s to %s (cuid %s), %s\n",
		stamp(), c.Transport(), c.Remote(), c.CUID(), hbText(set, name))
	now := time.Now()
	hbNext, reprobe := now, time.Time{}
	if c.Transport() == "tls" && autoTransport(cc) {
		reprobe = now.Add(reprobeIn())
	}
	unanswered := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	probe := newDTLSProbe(ctx, d, cc)
	defer probe.stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Done():
			return errors.New("the session was closed")
		case <-sock.served:
			if err := agentSync(ctx, g, life, c, false); err != nil {
				return err
			}
		case res := <-probe.done:
			probe.running = false
			if nc := agentMove(g, sock, c, res); nc != nil {
				c, reprobe, unanswered = nc, time.Time{}, 0
			}
		case <-timer.C:
		}
		now := time.Now()
		if set.interval > 0 && !now.Before(hbNext) {
			hbNext = now.Add(set.interval)
			if err := agentHeartbeat(ctx, g, c, set, &unanswered); err != nil {
				return err
			}
		}
		if err := agentUpkeep(ctx, g, life, c); err != nil {
			return err
		}
		if !reprobe.IsZero() && !time.Now().Before(reprobe) {
			reprobe = time.Now().Add(reprobeIn())
			probe.start()
		}
		if nset, nname := life.hb(); nset != set {
			set = nset
			hbNext = time.Now().Add(set.interval)
			fmt.Fprintf(g.stdout, "%s agent: %s\n", stamp(), hbText(set, nname))
		}
		wake := life.next()
		for _, t := range []time.Time{hbNext, reprobe} {
			if !t.IsZero() && (t != hbNext || set.interval > 0) && (wake.IsZero() || t.Before(wake)) {
				wake = t
			}
		}
		if wake.IsZero() {
			wake = time.Now().Add(time.Hour)
		}
		timer.Reset(max(time.Until(wake), 0))
	}
}

// agentSync reads the client's mitigations (and, with config, the session
// configuration). Only a redirect ends the session; other failures are
// reported and the session goes on with what the agent knew.
func agentSync(ctx context.Context, g *globals, life *agentLife, c *dotsclient.Client, config bool) error {
	rctx, cancel := g.reqCtx(ctx)
	defer cancel()
	var err error
	if config {
		err = life.readConfig(rctx, c)
	}
	if err == nil {
		err = life.learn(rctx, c)
	}
	var re *redirectError
	if errors.As(err, &re) {
		return err
	}
	if err != nil {
		fmt.Fprintf(g.stderr, "%s agent: %v\n", stamp(), err)
	}
	return nil
}

// agentUpkeep refreshes what is due: mitigation requests, and the session
// configuration outside of mitigations.
func agentUpkeep(ctx context.Context, g *globals, life *agentLife, c *dotsclient.Client) error {
	rctx, cancel := g.reqCtx(ctx)
	defer cancel()
	if err := life.refreshDue(rctx, c); err != nil {
		return err
	}
	if !life.configDueNow() {
		return nil
	}
	err := life.readConfig(rctx, c)
	var re *redirectError
	switch {
	case errors.As(err, &re):
		return err
	case err != nil:
		life.configDue = time.Now().Add(refreshRetry)
		fmt.Fprintf(g.stderr, "%s agent: %v\n", stamp(), err)
	default:
		fmt.Fprintf(g.stdout, "%s agent: session configuration read again\n", stamp())
	}
	return nil
}

// agentHeartbeat sends one heartbeat; an error means the session is lost.
func agentHeartbeat(ctx context.Context, g *globals, c *dotsclient.Client, set hbSet, unanswered *int) error {
	peerOK := !c.LastServerHeartbeat().IsZero() && time.Since(c.LastServerHeartbeat()) <= 2*set.interval
	r, err := c.Heartbeat(ctx, peerOK)
	switch {
	case err == nil && r.Code == dots.Changed:
		*unanswered = 0
	case err == nil:
		return fmt.Errorf("heartbeat answered %s %s", r.Code, r.Diag)
	default:
		*unanswered++
		fmt.Fprintf(g.stderr, "%s agent: heartbeat %d unanswered: %v\n", stamp(), *unanswered, err)
		if *unanswered >= set.missing {
			return fmt.Errorf("%d heartbeats unanswered: session lost", *unanswered)
		}
	}
	return nil
}

// dtlsProbe tries DTLS in the background for a session that fell back
// to TLS (RFC 9132 §4.3), so that heartbeats and refreshes go on meanwhile.
type dtlsProbe struct {
	ctx     context.Context
	cancel  context.CancelFunc
	d       *agentDialer
	cc      dotsclient.Config
	done    chan probeResult
	running bool
}

type probeResult struct {
	c   *dotsclient.Client
	err error
}

func newDTLSProbe(ctx context.Context, d *agentDialer, cc dotsclient.Config) *dtlsProbe {
	ctx, cancel := context.WithCancel(ctx)
	return &dtlsProbe{ctx: ctx, cancel: cancel, d: d, cc: cc, done: make(chan probeResult, 1)}
}

// start begins a probe unless one is running.
func (p *dtlsProbe) start() {
	if p.running {
		return
	}
	p.running = true
	go func() {
		c, err := p.d.probeDTLS(p.ctx, p.cc)
		p.done <- probeResult{c, err}
	}()
}

// stop ends a running probe and closes a session it may have opened.
func (p *dtlsProbe) stop() {
	p.cancel()
	if p.running {
		if res := <-p.done; res.c != nil {
			res.c.Close()
		}
	}
}

// agentMove moves to the session a DTLS probe opened. Make before break:
// the TLS session old is closed only once the DTLS one is up and serving;
// nil when DTLS still fails.
func agentMove(g *globals, sock *agentServer, old *dotsclient.Client, res probeResult) *dotsclient.Client {
	if res.err != nil {
		fmt.Fprintf(g.stderr, "%s agent: DTLS still fails, staying on TLS: %v\n", stamp(), res.err)
		return nil
	}
	sock.cur.Store(res.c)
	old.Close()
	fmt.Fprintf(g.stdout, "%s agent: session moved to dtls to %s (cuid %s)\n", stamp(), res.c.Remote(), res.c.CUID())
	return res.c
}
