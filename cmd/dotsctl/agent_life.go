package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

// agentLife is what the agent keeps across its sessions: the client's
// mitigation requests, which it refreshes before their lifetime ends (RFC
// 9132 §4.4.1), and the session configuration, which it reads again
// before its Max-Age ends and whose mitigating-config or idle-config set
// it follows (§4.5). It learns the requests from GET /mitigate at the
// start of a session and after each command it serves.
type agentLife struct {
	now  func() time.Time
	log  io.Writer
	reqs map[uint32]*agentReq

	idle, mitigating hbSet
	configDue        time.Time // zero: the configuration does not expire
}

// agentReq is one of the client's mitigation requests.
type agentReq struct {
	scope    dots.Scope // its parameters, as a refresh repeats them
	lifetime int64      // what a refresh asks for: the lifetime it was last given
	status   dots.Status
	expires  time.Time // zero: indefinite
	due      time.Time // when to refresh; zero: never (indefinite, or ending)
}

// sameExpiry is how far two readings of a request's end may differ
// (lifetimes are whole seconds, rounded up) for it to count as unchanged.
const sameExpiry = 2 * time.Second

// hbSet is the heartbeat part of a configuration set.
type hbSet struct {
	interval time.Duration // 0: no heartbeats (idle-config only)
	missing  int
}

// defaultHB is RFC 9132 Appendix C's heartbeat-interval and missing-hb-allowed.
var defaultHB = hbSet{interval: 30 * time.Second, missing: 15}

// configRetry is how soon the configuration is read again without a
// Max-Age (RFC 9132 §4.5: every 60 s).
const configRetry = time.Minute

// refreshRetry is how soon a refresh that got no answer is tried again.
const refreshRetry = 5 * time.Second

func newAgentLife(log io.Writer) *agentLife {
	return &agentLife{now: time.Now, log: log, reqs: map[uint32]*agentReq{}, idle: defaultHB, mitigating: defaultHB}
}

// refreshAfter is when something valid for d is refreshed: once 80% of d
// has passed, or 60 s before its end if that comes earlier.
func refreshAfter(d time.Duration) time.Duration {
	at := d * 4 / 5
	if e := d - time.Minute; e > 0 && e < at {
		at = e
	}
	return at
}

// redirectError is a 5.03 redirect (RFC 9132 §4.6) met on the session to
// from: the agent follows it.
type redirectError struct {
	from string
	resp *dotsclient.Response
}

func (e *redirectError) Error() string {
	rs, _ := dotsclient.Redirected(e.resp)
	return fmt.Sprintf("redirected by %s to %s", e.from, rs.AltServer)
}

// answerErr turns a transport error or a redirect into an error.
func answerErr(c *dotsclient.Client, what string, r *dotsclient.Response, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if _, ok := dotsclient.Redirected(r); ok {
		return &redirectError{from: c.Remote(), resp: r}
	}
	return nil
}

// active reports whether one of the client's mitigations is active
// (status 1 to 5), when mitigating-config applies.
func (l *agentLife) active() bool {
	for _, rq := range l.reqs {
		if rq.status >= dots.StatusInProgress && rq.status <= dots.StatusClientWithdrawn {
			return true
		}
	}
	return false
}

// hb is the heartbeat set that applies now, and its name.
func (l *agentLife) hb() (hbSet, string) {
	if l.active() {
		return l.mitigating, "mitigating-config"
	}
	return l.idle, "idle-config"
}

// refreshable tells the requests a refresh keeps: not those ending or ended.
func refreshable(s dots.Status) bool {
	return s != dots.StatusClientWithdrawn && s != dots.StatusTerminated && s != dots.StatusServerWithdrawn
}

// requestParams are the attributes of a request a refresh repeats (RFC
// 9132 §4.4.1: everything but the lifetime unchanged). Not its acl-list:
// the ACL switch was the request's (RFC 9133 §3.2.1), and repeating it
// would undo a change made since over the data channel.
func requestParams(sc dots.Scope) dots.Scope {
	return dots.Scope{TargetPrefix: sc.TargetPrefix, TargetPortRange: sc.TargetPortRange, TargetProtocol: sc.TargetProtocol,
		TargetFQDN: sc.TargetFQDN, TargetURI: sc.TargetURI, AliasName: sc.AliasName,
		TriggerMitigation: sc.TriggerMitigation, Countermeasure: sc.Countermeasure}
}

// learn reads all the client's mitigation requests (GET /mitigate).
func (l *agentLife) learn(ctx context.Context, c *dotsclient.Client) error {
	r, err := c.Status(ctx, nil, "")
	if err := answerErr(c, "reading the mitigations", r, err); err != nil {
		return err
	}
	if r.Code == dots.NotFound {
		clear(l.reqs)
		return nil
	}
	if r.Code != dots.Content || r.Body == nil || r.Body.MitigationScope == nil {
		return fmt.Errorf("reading the mitigations: %w", errOf(r))
	}
	now := l.now()
	seen := map[uint32]*agentReq{}
	for _, sc := range r.Body.MitigationScope.Scope {
		if sc.MID == nil || sc.Status == nil {
			continue
		}
		rq := &agentReq{scope: requestParams(sc), status: *sc.Status, lifetime: -1}
		if sc.Lifetime != nil && *sc.Lifetime >= 0 {
			// What remains is the lifetime unless the request was read
			// before with the same end: then it is the lifetime known. A
			// different end means a refresh by someone else.
			rq.lifetime, rq.expires = *sc.Lifetime, now.Add(time.Duration(*sc.Lifetime)*time.Second)
			if old := l.reqs[*sc.MID]; old != nil && !old.expires.IsZero() && absDur(old.expires.Sub(rq.expires)) <= sameExpiry {
				rq.lifetime, rq.expires = old.lifetime, old.expires
			}
		}
		if !rq.expires.IsZero() && refreshable(rq.status) {
			life := time.Duration(rq.lifetime) * time.Second
			rq.due = rq.expires.Add(-life + refreshAfter(life))
		}
		seen[*sc.MID] = rq
	}
	l.reqs = seen
	return nil
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// errOf is r's refusal, or its unexpected code.
func errOf(r *dotsclient.Response) error {
	if err := r.Err(); err != nil {
		return err
	}
	return fmt.Errorf("unexpected %s", r.Code)
}

// refreshDue refreshes the requests whose time has come: the same mid and
// parameters, the lifetime asked for again (RFC 9132 §4.4.1).
func (l *agentLife) refreshDue(ctx context.Context, c *dotsclient.Client) error {
	now := l.now()
	mids := make([]uint32, 0, len(l.reqs))
	for mid, rq := range l.reqs {
		if !rq.due.IsZero() && !now.Before(rq.due) {
			mids = append(mids, mid)
		}
	}
	slices.Sort(mids)
	for _, mid := range mids {
		rq := l.reqs[mid]
		sc := rq.scope
		sc.Lifetime = dots.Ptr(rq.lifetime)
		r, err := c.Mitigate(ctx, mid, sc)
		if err := answerErr(c, fmt.Sprintf("refreshing mid %d", mid), r, err); err != nil {
			if _, ok := err.(*redirectError); ok {
				return err
			}
			fmt.Fprintf(l.log, "%s agent: %v; trying again in %s\n", stamp(), err, refreshRetry)
			rq.due = l.now().Add(refreshRetry)
			continue
		}
		switch {
		case r.Code == dots.Created || r.Code == dots.Changed:
			granted := rq.lifetime
			if r.Body != nil && r.Body.MitigationScope != nil && len(r.Body.MitigationScope.Scope) > 0 && r.Body.MitigationScope.Scope[0].Lifetime != nil {
				granted = *r.Body.MitigationScope.Scope[0].Lifetime
			}
			rq.due, rq.expires = time.Time{}, time.Time{}
			if granted >= 0 {
				at := l.now()
				rq.due, rq.expires = at.Add(refreshAfter(time.Duration(granted)*time.Second)), at.Add(time.Duration(granted)*time.Second)
			}
			fmt.Fprintf(l.log, "%s agent: mid %d refreshed (%s), lifetime %s\n", stamp(), mid, r.Code, lifetimeText(granted))
		case r.Code == dots.NotFound:
			delete(l.reqs, mid)
		case r.Code == dots.ServiceUnavailable && r.MaxAge != nil:
			rq.due = l.now().Add(time.Duration(max(*r.MaxAge, 1)) * time.Second)
			fmt.Fprintf(l.log, "%s agent: refreshing mid %d: %v; trying again after Max-Age\n", stamp(), mid, errOf(r))
		default:
			rq.due = time.Time{} // the server will not take it: leave it to the operator
			fmt.Fprintf(l.log, "%s agent: refreshing mid %d: %v; not refreshing it again\n", stamp(), mid, errOf(r))
		}
	}
	return nil
}

func lifetimeText(s int64) string {
	if s < 0 {
		return "indefinite"
	}
	return (time.Duration(s) * time.Second).String()
}

func stamp() string { return time.Now().Format(time.TimeOnly) }

// readConfig reads the session configuration (GET /config) and when to
// read it again: before its Max-Age runs out, every 60 s without one
// (RFC 9132 §4.5).
func (l *agentLife) readConfig(ctx context.Context, c *dotsclient.Client) error {
	r, err := c.GetConfig(ctx, nil)
	if err := answerErr(c, "reading the session configuration", r, err); err != nil {
		return err
	}
	if r.Code != dots.Content || r.Body == nil || r.Body.SignalConfig == nil {
		return fmt.Errorf("reading the session configuration: %w", errOf(r))
	}
	sc := r.Body.SignalConfig
	l.mitigating = hbSetOf(sc.MitigatingConfig, false)
	l.idle = hbSetOf(sc.IdleConfig, true)
	switch {
	case r.MaxAge == nil:
		l.configDue = l.now().Add(configRetry)
	case *r.MaxAge == math.MaxUint32:
		l.configDue = time.Time{}
	default:
		l.configDue = l.now().Add(max(refreshAfter(time.Duration(*r.MaxAge)*time.Second), time.Second))
	}
	return nil
}

// hbSetOf reads a set's heartbeat values; an absent value is the default.
// Only idle-config may turn heartbeats off (interval 0).
func hbSetOf(set *dots.ConfigSet, idle bool) hbSet {
	hb := defaultHB
	if set == nil {
		return hb
	}
	if v := set.HeartbeatInterval; v != nil && v.CurrentValue != nil && (*v.CurrentValue > 0 || idle) {
		hb.interval = time.Duration(*v.CurrentValue) * time.Second
	}
	if v := set.MissingHBAllowed; v != nil && v.CurrentValue != nil {
		hb.missing = int(*v.CurrentValue)
	}
	return hb
}

// configDueNow reports whether the configuration is to be read again. Not
// while a mitigation is active: then the client does not refresh it, and
// the server keeps the session (RFC 9132 §4.5).
func (l *agentLife) configDueNow() bool {
	return !l.configDue.IsZero() && !l.now().Before(l.configDue) && !l.active()
}

// next is the earliest time something is due (zero: nothing).
func (l *agentLife) next() time.Time {
	var t time.Time
	earlier := func(u time.Time) {
		if !u.IsZero() && (t.IsZero() || u.Before(t)) {
			t = u
		}
	}
	for _, rq := range l.reqs {
		earlier(rq.due)
	}
	if !l.active() {
		earlier(l.configDue)
	}
	return t
}
