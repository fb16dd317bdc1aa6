package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

const (
	defaultWatchInterval = 5 * time.Second
	minWatchInterval     = time.Second
	// After a lost session the first attempt to reconnect waits
	// firstReconnectDelay; each failure doubles the wait, up to
	// maxReconnectDelay.
	firstReconnectDelay = time.Second
	maxReconnectDelay   = time.Minute
)

// intervalFlag is --interval: a duration of at least minWatchInterval.
type intervalFlag struct {
	d   time.Duration
	set bool
}

func (f *intervalFlag) String() string { return f.d.String() }

func (f *intervalFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration like 5s or 1m")
	}
	if d < minWatchInterval {
		return fmt.Errorf("%s is too short: use at least %s", d, minWatchInterval)
	}
	f.d, f.set = d, true
	return nil
}

// watcher follows the mitigations of the client (or one mid): an Observe
// registration on the mitigation resource (RFC 9132 §4.4.2.1) redraws on
// every notification, and a GET every interval keeps the counters current,
// since the server does not notify a change of rates alone.
type watcher struct {
	g        *globals
	cc       dotsclient.Config
	mid      *uint32
	interval time.Duration
	view     *view
	answered bool // the server has answered once (in any session)
}

// endError ends the watch instead of reconnecting: the display cannot be
// written, or the server refused the first request (the configuration
// needs fixing, not a new session).
type endError struct{ err error }

func (e *endError) Error() string { return e.err.Error() }
func (e *endError) Unwrap() error { return e.err }

func watchStatus(ctx context.Context, g *globals, mid *uint32, interval time.Duration) error {
	cfg, err := loadCtlConfig(g.config)
	if err != nil {
		return err
	}
	cc, err := cfg.clientConfig()
	if err != nil {
		return err
	}
	w := &watcher{g: g, cc: cc, mid: mid, interval: interval, view: newView(g, mid, interval)}
	return w.run(ctx)
}

// run keeps a session until ctx ends; a lost session is shown and
// re-established with a growing delay.
func (w *watcher) run(ctx context.Context) error {
	delay := firstReconnectDelay
	for {
		answered, err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if ee := (*endError)(nil); errors.As(err, &ee) {
			return ee.err
		}
		if answered {
			delay = firstReconnectDelay
		}
		if err := w.view.reconnecting(time.Now(), err, delay); err != nil {
			return fmt.Errorf("writing the status: %w", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, maxReconnectDelay)
	}
}

// update is one answer delivered by an Observe registration.
type update struct {
	reg  *registration
	resp *dotsclient.Response
}

// registration is one Observe registration; ok is set once the server
// accepted it, so its refusal is not shown twice (the GET that follows a
// refused registration shows it).
type registration struct {
	cancel func()
	ok     atomic.Bool
}

// watchSession is the state of one session of a watcher.
type watchSession struct {
	w       *watcher
	c       *dotsclient.Client
	reg     *registration // nil: not observing; registered again at the next refresh
	updates chan update
	stop    chan struct{} // closed when the session ends: unblocks the callbacks
}

// session runs one session until ctx ends (nil error) or the session is
// lost; answered reports whether the server answered at least once.
func (w *watcher) session(ctx context.Context) (answered bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, w.g.timeout)
	c, err := dotsclient.Dial(dctx, w.cc)
	cancel()
	if err != nil {
		return false, err
	}
	defer c.Close()
	defer func() { w.cc.CUID = c.CUID() }() // a new cuid after a collision is the next session's
	s := &watchSession{w: w, c: c, updates: make(chan update, 16), stop: make(chan struct{})}
	defer s.deregister() // runs after close(s.stop), before c.Close
	defer close(s.stop)
	if err := s.refresh(ctx); err != nil {
		return false, err
	}
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case <-c.Done():
			return true, errors.New("the server closed the session")
		case u := <-s.updates:
			if u.reg != s.reg {
				continue // from a registration that has ended
			}
			if err := s.show(u.resp); err != nil {
				return true, err
			}
		case <-t.C:
			if err := s.refresh(ctx); err != nil {
				return true, err
			}
		}
	}
}

// refresh registers the observation if there is none (its first answer
// then arrives as an update), or else reads the status with a GET.
func (s *watchSession) refresh(ctx context.Context) error {
	if s.reg == nil && s.register(ctx) {
		return nil
	}
	rctx, cancel := s.w.g.reqCtx(ctx)
	defer cancel()
	r, err := s.c.Status(rctx, s.w.mid, "")
	if err != nil {
		return err
	}
	return s.show(r)
}

// register sends GET with Observe 0; false if the server refused it (for
// instance 4.04: nothing to observe yet) or did not answer.
func (s *watchSession) register(ctx context.Context) bool {
	reg := &registration{}
	updates, stop := s.updates, s.stop
	rctx, cancel := s.w.g.reqCtx(ctx)
	defer cancel()
	cancelObs, err := s.c.Observe(rctx, s.w.mid, "", func(r *dotsclient.Response) {
		if r.Code >= dots.BadRequest && !reg.ok.Load() {
			return
		}
		select {
		case updates <- update{reg, r}:
		case <-stop:
		}
	})
	if err != nil {
		return false
	}
	reg.cancel = cancelObs
	reg.ok.Store(true)
	s.reg = reg
	return true
}

// show displays an answer. A 4.04 for the watched mid ends its observation
// (RFC 7641 §3.2); the next refresh registers again, for a mid used anew.
func (s *watchSession) show(r *dotsclient.Response) error {
	first := !s.w.answered
	s.w.answered = true
	// A 4.xx other than 4.04 (nothing to show yet) will not change by
	// itself; 5.xx may.
	if first && r.Code >= dots.BadRequest && r.Code < dots.InternalServerError && r.Code != dots.NotFound {
		return &endError{fmt.Errorf("status --watch: %w", refused(r))}
	}
	if r.Code == dots.NotFound && s.w.mid != nil {
		s.deregister()
	}
	if err := s.w.view.show(time.Now(), r); err != nil {
		return &endError{fmt.Errorf("writing the status: %w", err)}
	}
	return nil
}

// deregister cancels the observation with GET and Observe 1 (RFC 9132 §4.4.2.1).
func (s *watchSession) deregister() {
	if s.reg != nil {
		s.reg.cancel()
		s.reg = nil
	}
}
