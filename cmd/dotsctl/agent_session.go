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
	s := &agentLoop{g: g, sock: sock, life: life, d: d, c: c, cc: cc}
	defer func() { s.c.Close() }() // the session of the moment
	sock.cur.Store(c)
	defer sock.cur.Store(nil)
	if err := agentSync(ctx, g, life, c, true); err != nil {
		return err
	}
	set, name := life.hb()
	s.set = set
	fmt.Fprintf(g.stdout, "%s agent: session up over %s to %s (cuid %s), %s\n",
		stamp(), c.Transport(), c.Remote(), c.CUID(), hbText(set, name))
	s.hbNext = time.Now()
	s.scheduleProbe()
	s.probe = newBackgroundDial(ctx, func(ctx context.Context, cc dotsclient.Config) (*dotsclient.Client, dotsclient.Config, error) {
		nc, err := d.probeDTLS(ctx, cc)
		return nc, cc, err
	})
	defer s.probe.stop()
	s.parallel = newBackgroundDial(ctx, func(ctx context.Context, _ dotsclient.Config) (*dotsclient.Client, dotsclient.Config, error) {
		return d.dial(ctx, true)
	})
	defer s.parallel.stop()
	return s.run(ctx)
}

// agentLoop is the state of one session of the agent.
type agentLoop struct {
	g    *globals
	sock *agentServer
	life *agentLife
	d    *agentDialer
	c    *dotsclient.Client
	cc   dotsclient.Config // c was opened with it

	set        hbSet
	hbNext     time.Time
	unanswered int
	reprobe    time.Time // next DTLS probe; zero: none (on DTLS)
	parallelAt time.Time // next parallel session allowed
	probe      *backgroundDial
	parallel   *backgroundDial
}

func (s *agentLoop) run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.c.Done():
			if err := s.closed(ctx); err != nil {
				return err
			}
		case <-s.sock.served:
			if err := agentSync(ctx, s.g, s.life, s.c, false); err != nil {
				return err
			}
		case res := <-s.probe.done:
			s.probe.running = false
			if res.err != nil {
				fmt.Fprintf(s.g.stderr, "%s agent: DTLS still fails, staying on TLS: %v\n", stamp(), res.err)
			} else {
				s.move(res, "session moved to dtls")
			}
		case res := <-s.parallel.done:
			s.parallel.running = false
			switch {
			case res.err != nil:
				fmt.Fprintf(s.g.stderr, "%s agent: parallel session failed, heartbeats go on on the old one: %v\n", stamp(), res.err)
			case s.unanswered == 0:
				res.c.Close() // the old session answers again: keep it
			default:
				s.move(res, "moved to a parallel session over "+res.c.Transport())
			}
		case <-timer.C:
		}
		if err := s.tick(ctx); err != nil {
			return err
		}
		timer.Reset(max(time.Until(s.wake()), 0))
	}
}

// tick does what is due.
func (s *agentLoop) tick(ctx context.Context) error {
	if now := time.Now(); s.set.interval > 0 && !now.Before(s.hbNext) {
		s.hbNext = now.Add(s.set.interval)
		if err := s.heartbeat(ctx); err != nil {
			return err
		}
	}
	if err := agentUpkeep(ctx, s.g, s.life, s.c); err != nil {
		return err
	}
	if !s.reprobe.IsZero() && !time.Now().Before(s.reprobe) {
		s.reprobe = time.Now().Add(reprobeIn())
		s.probe.start(s.cc)
	}
	if set, name := s.life.hb(); set != s.set {
		s.set = set
		s.hbNext = time.Now().Add(set.interval)
		fmt.Fprintf(s.g.stdout, "%s agent: %s\n", stamp(), hbText(set, name))
	}
	return nil
}

// wake is when the loop has something to do next.
func (s *agentLoop) wake() time.Time {
	wake := s.life.next()
	for _, t := range []time.Time{s.hbNext, s.reprobe} {
		if !t.IsZero() && (t != s.hbNext || s.set.interval > 0) && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	if wake.IsZero() {
		wake = time.Now().Add(time.Hour)
	}
	return wake
}

// scheduleProbe plans a DTLS probe for a session on a TLS fallback.
func (s *agentLoop) scheduleProbe() {
	s.reprobe = time.Time{}
	if s.c.Transport() == "tls" && autoTransport(s.cc) {
		s.reprobe = time.Now().Add(reprobeIn())
	}
}

// move makes the session res opened the agent's. Make before break: the
// old session is closed only once the new one is up and serving.
func (s *agentLoop) move(res dialResult, what string) {
	old := s.c
	s.sock.cur.Store(res.c)
	s.c, s.cc, s.unanswered = res.c, res.cc, 0
	old.Close()
	s.scheduleProbe()
	fmt.Fprintf(s.g.stdout, "%s agent: %s to %s (cuid %s)\n", stamp(), what, res.c.Remote(), res.c.CUID())
}

// closed handles the end of the session by the peer. During a mitigation
// the agent moves to a parallel session at once (RFC 9132 §4.7), the one
// being opened or a new one, no more often than every parallelRetry;
// else the session is over.
func (s *agentLoop) closed(ctx context.Context) error {
	if !s.life.active() {
		return errors.New("the session was closed")
	}
	if !s.parallel.running {
		if time.Now().Before(s.parallelAt) {
			return errors.New("the session was closed")
		}
		s.parallelAt = time.Now().Add(parallelRetry)
		fmt.Fprintf(s.g.stderr, "%s agent: the session was closed during a mitigation: opening a new one at once\n", stamp())
		s.parallel.start(s.cc)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case res := <-s.parallel.done:
		s.parallel.running = false
		if res.err != nil {
			return fmt.Errorf("the session was closed, and a new one failed: %w", res.err)
		}
		s.move(res, "moved to a parallel session over "+res.c.Transport())
		return nil
	}
}

// parallelRetry is the least time between two parallel sessions.
const parallelRetry = time.Minute

// heartbeat sends one heartbeat, waiting up to heartbeat-interval over
// TLS (RFC 9132 §4.7; missing-hb-allowed is not negotiated there: one
// unanswered heartbeat tells) and at most 5 s over DTLS. When too many go
// unanswered and no mitigation is active, the session is lost (an
// error). While one is, the session is not given up (§4.7): heartbeats
// go on on it, and a parallel session is opened, to which the agent moves
// once it is up.
func (s *agentLoop) heartbeat(ctx context.Context) error {
	c, set := s.c, s.set
	wait, missing := min(set.interval, 5*time.Second), set.missing
	if c.Transport() == "tls" {
		wait, missing = set.interval, 1
	}
	peerOK := !c.LastServerHeartbeat().IsZero() && time.Since(c.LastServerHeartbeat()) <= 2*set.interval
	r, err := c.HeartbeatWithin(ctx, peerOK, wait)
	switch {
	case err == nil && r.Code == dots.Changed:
		s.unanswered = 0
		return nil
	case err == nil:
		return fmt.Errorf("heartbeat answered %s %s", r.Code, r.Diag)
	}
	s.unanswered++
	fmt.Fprintf(s.g.stderr, "%s agent: heartbeat %d unanswered: %v\n", stamp(), s.unanswered, err)
	if s.unanswered < missing {
		return nil
	}
	if !s.life.active() {
		return fmt.Errorf("%d heartbeats unanswered: session lost", s.unanswered)
	}
	if !s.parallel.running && !time.Now().Before(s.parallelAt) {
		s.parallelAt = time.Now().Add(parallelRetry)
		fmt.Fprintf(s.g.stderr, "%s agent: %d heartbeats unanswered during a mitigation: keeping the session, opening a parallel one\n", stamp(), s.unanswered)
		s.parallel.start(s.cc)
	}
	return nil
}

// agentSync reads the client's mitigations (and, with config, the session
// configuration). Only a redirect ends the session; other failures are
// reported and the session goes on with what the agent knew.
func agentSync(ctx context.Context, g *globals, life *agentLife, c *dotsclient.Client, config bool) error {
	rctx, cancel := g.reqCtx(ctx)
	defer cancel()
	var re *redirectError
	if config {
		if err := life.readConfig(rctx, c); errors.As(err, &re) {
			return err
		} else if err != nil {
			life.configDue = time.Now().Add(refreshRetry) // try again soon
			fmt.Fprintf(g.stderr, "%s agent: %v\n", stamp(), err)
		}
	}
	if err := life.learn(rctx, c); errors.As(err, &re) {
		return err
	} else if err != nil {
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

// backgroundDial opens a session in the background, so that heartbeats
// and refreshes go on meanwhile: a DTLS probe, or a parallel session.
type backgroundDial struct {
	ctx     context.Context
	cancel  context.CancelFunc
	dial    func(context.Context, dotsclient.Config) (*dotsclient.Client, dotsclient.Config, error)
	done    chan dialResult
	running bool
}

type dialResult struct {
	c   *dotsclient.Client
	cc  dotsclient.Config
	err error
}

func newBackgroundDial(ctx context.Context, dial func(context.Context, dotsclient.Config) (*dotsclient.Client, dotsclient.Config, error)) *backgroundDial {
	ctx, cancel := context.WithCancel(ctx)
	return &backgroundDial{ctx: ctx, cancel: cancel, dial: dial, done: make(chan dialResult, 1)}
}

// start begins a dial from the session configuration cc unless one is running.
func (b *backgroundDial) start(cc dotsclient.Config) {
	if b.running {
		return
	}
	b.running = true
	go func() {
		c, cc, err := b.dial(b.ctx, cc)
		b.done <- dialResult{c, cc, err}
	}()
}

// stop ends a running dial and closes a session it may have opened.
func (b *backgroundDial) stop() {
	b.cancel()
	if b.running {
		if res := <-b.done; res.c != nil {
			res.c.Close()
		}
	}
}
