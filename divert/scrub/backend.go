package scrub

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/scrub/agent"
)

// Name is the backend's name in outcomes and counters.
const Name = "scrub"

// Options are the collaborators of a Backend.
type Options struct {
	Logger       *slog.Logger                                // nil: discard
	Updates      divert.Updates                              // later changes of outcome (a node came back)
	Measurements divert.Measurements                         // counter samples per mitigation
	Now          func() time.Time                            // nil: time.Now
	Tick         <-chan time.Time                            // nil: a ticker of Config.PollInterval; tests call Poll
	NoPoll       bool                                        // start no poller (tests call Poll)
	Transport    func(NodeConfig) (http.RoundTripper, error) // nil: mutual TLS from Config
	// DefaultCountermeasure is the countermeasure of a domain's requests
	// that name none (dotsd: the BGP domain policy). nil or "": scrubbing.
	DefaultCountermeasure func(domain string) string
}

// Backend implements divert.Diverter, divert.Syncer, divert.Handler and
// divert.Checker.
type Backend struct {
	cfg     Config
	opts    Options
	log     *slog.Logger
	domains map[string]bool
	nodes   []*nodeState

	sendMu sync.Mutex // one PUT round at a time

	mu       sync.Mutex
	active   map[divert.Key]divert.Diversion
	since    map[divert.Key]uint64 // version at which each key was last applied
	version  uint64                // bumped by every change of active
	sent     uint64                // version of the last state built
	skipped  map[divert.Key]string // left out of the last state built
	seq      uint64
	reported map[divert.Key]report
	meters   map[divert.Key]map[string]*meter // node name -> meter

	stop chan struct{}
	wg   sync.WaitGroup
}

// nodeState is what the backend knows of one node; guarded by Backend.mu.
type nodeState struct {
	cfg    NodeConfig
	client *http.Client
	acked  uint64 // version of the last state the node accepted
	boot   string // as the node reported on that PUT
	gen    uint64
	err    error // last failure to reach the node or have it accept; nil: fine
	load   load
}

var (
	_ divert.Diverter = (*Backend)(nil)
	_ divert.Syncer   = (*Backend)(nil)
	_ divert.Handler  = (*Backend)(nil)
	_ divert.Checker  = (*Backend)(nil)
)

// New validates cfg, loads the certificates and starts the poller.
func New(cfg Config, opts Options) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.normalized()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Transport == nil {
		cert, _, err := pki.LoadKeyPair(cfg.Certificate, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("scrub: certificate: %w", err)
		}
		opts.Transport = func(n NodeConfig) (http.RoundTripper, error) {
			pool, err := pki.LoadCertPool(n.CA)
			if err != nil {
				return nil, err
			}
			return &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12},
				TLSHandshakeTimeout: cfg.Timeout, ResponseHeaderTimeout: cfg.Timeout, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}, nil
		}
	}
	b := &Backend{cfg: cfg, opts: opts, log: opts.Logger.With("diverter", Name), domains: map[string]bool{},
		active: map[divert.Key]divert.Diversion{}, since: map[divert.Key]uint64{}, reported: map[divert.Key]report{},
		meters: map[divert.Key]map[string]*meter{}, stop: make(chan struct{})}
	for _, d := range cfg.Domains {
		b.domains[d] = true
	}
	for i, n := range cfg.Nodes {
		rt, err := opts.Transport(n)
		if err != nil {
			return nil, fmt.Errorf("scrub: nodes[%d].ca: %w", i, err)
		}
		b.nodes = append(b.nodes, &nodeState{cfg: n, client: &http.Client{Transport: rt, Timeout: cfg.Timeout},
			err: errors.New("not contacted yet")})
	}
	if !opts.NoPoll {
		tick := opts.Tick
		var t *time.Ticker
		if tick == nil {
			t = time.NewTicker(cfg.PollInterval)
			tick = t.C
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			if t != nil {
				defer t.Stop()
			}
			b.pollLoop(tick)
		}()
	}
	return b, nil
}

// Close stops the poller. The nodes keep their state (a restart of dotsd
// re-sends it; withdrawals remove it).
func (b *Backend) Close() error {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	b.wg.Wait()
	for _, n := range b.nodes {
		n.client.CloseIdleConnections()
	}
	return nil
}

// Name returns "scrub".
func (b *Backend) Name() string { return Name }

// Handles reports whether d is scrubbed: its client domain is one of the
// scrubbed domains and its countermeasure (the one it names, else the
// domain's) is scrubbing. Data-channel filters (Key.ACL, Filters) are not
// enforced on the nodes (Status 0): a node's mitigation would drop
// everything to the ACL's destinations and crowd out the mitigations of
// those targets.
func (b *Backend) Handles(d divert.Diversion) bool {
	if d.Key.ACL != "" || len(d.Filters) > 0 {
		return false
	}
	return b.domains[d.Domain] && len(d.Prefixes) > 0 && b.countermeasure(d) == countermeasureScrubbing
}

const countermeasureScrubbing = "scrubbing"

func (b *Backend) countermeasure(d divert.Diversion) string {
	if d.Countermeasure != "" {
		return d.Countermeasure
	}
	if f := b.opts.DefaultCountermeasure; f != nil {
		if c := f(d.Domain); c != "" {
			return c
		}
	}
	return countermeasureScrubbing
}

// Check refuses scrubbing for a client domain that is not scrubbed here:
// its traffic would reach the scrubbing centre with no filter for it.
func (b *Backend) Check(d divert.Diversion) error {
	if d.Countermeasure == countermeasureScrubbing && !b.domains[d.Domain] {
		return fmt.Errorf("client domain %q is not scrubbed by this server's scrubbing nodes (divert.scrub.domains)", d.Domain)
	}
	return nil
}

// Apply adds or replaces d in the desired state and sends it to the nodes.
// A diversion that is no longer scrubbed (its escalation ladder moved it
// to another countermeasure) is taken out of the state.
func (b *Backend) Apply(ctx context.Context, d divert.Diversion) (divert.Applied, error) {
	if !b.Handles(d) {
		if err := b.Withdraw(ctx, d.Key); err != nil {
			// Not this backend's any more: the nodes get the state
			// without it when they answer again.
			b.log.Warn("mitigation moved off scrubbing", "key", d.Key.String(), "err", err)
		}
		return divert.Applied{}, nil
	}
	b.mu.Lock()
	b.active[d.Key] = d
	b.version++
	b.since[d.Key] = b.version
	b.mu.Unlock()
	b.push(ctx)
	b.mu.Lock()
	a, shape := b.outcomeLocked(d.Key)
	b.reported[d.Key] = report{a, shape, b.opts.Now()}
	b.mu.Unlock()
	if a.Status == dots.StatusInProgress {
		return a, fmt.Errorf("scrub: %s: %w: %s", d.Key, errNoNode, a.Detail)
	}
	return a, nil
}

// Withdraw removes k from the desired state and sends it to the nodes.
func (b *Backend) Withdraw(ctx context.Context, k divert.Key) error {
	b.mu.Lock()
	if _, ok := b.active[k]; !ok {
		b.mu.Unlock()
		return nil
	}
	delete(b.active, k)
	delete(b.since, k)
	delete(b.reported, k)
	delete(b.meters, k)
	b.version++
	v := b.version
	b.mu.Unlock()
	b.push(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, n := range b.nodes {
		if n.acked < v {
			errs = append(errs, fmt.Errorf("%s: %v", n.cfg.Name, n.err))
		}
	}
	if len(errs) == len(b.nodes) {
		return fmt.Errorf("scrub: withdraw %s: no node has the new state yet (resent when one answers): %w", k, errors.Join(errs...))
	}
	return nil
}

// Sync makes the desired state exactly the handled diversions of all and
// sends it to every node; outcomes go to Updates.
func (b *Backend) Sync(ctx context.Context, all []divert.Diversion) error {
	b.mu.Lock()
	b.active = map[divert.Key]divert.Diversion{}
	b.since = map[divert.Key]uint64{}
	b.version++
	for _, d := range all {
		if b.Handles(d) {
			b.active[d.Key] = d
			b.since[d.Key] = b.version
		}
	}
	for k := range b.meters {
		if _, ok := b.active[k]; !ok {
			delete(b.meters, k)
		}
	}
	b.mu.Unlock()
	b.push(ctx)
	b.reportChanged()
	return nil
}

// push sends the current state to every node that has not accepted it.
func (b *Backend) push(ctx context.Context) {
	b.sendMu.Lock()
	defer b.sendMu.Unlock()
	b.mu.Lock()
	v := b.version
	var todo []*nodeState
	for _, n := range b.nodes {
		if n.acked < v {
			todo = append(todo, n)
		}
	}
	if len(todo) == 0 {
		b.mu.Unlock()
		return
	}
	all := make([]divert.Diversion, 0, len(b.active))
	for _, d := range b.active {
		all = append(all, d)
	}
	b.mu.Unlock()
	desired, skipped := Desired(all, b.cfg.Names)
	body, err := json.Marshal(desired)
	if err != nil {
		panic(err) // a Desired always marshals
	}
	type result struct {
		boot string
		gen  uint64
		err  error
	}
	res := make([]result, len(todo))
	var wg sync.WaitGroup
	for i, n := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].boot, res[i].gen, res[i].err = b.put(ctx, n, body)
		}()
	}
	wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent, b.skipped = v, skipped
	for i, n := range todo {
		if res[i].err != nil {
			if n.err == nil || n.err.Error() != res[i].err.Error() {
				b.log.Warn("node did not take the state", "node", n.cfg.Name, "mitigations", len(desired.Mitigations), "err", res[i].err)
			}
			n.err = res[i].err
			continue
		}
		if n.err != nil {
			b.log.Info("node has the state", "node", n.cfg.Name, "mitigations", len(desired.Mitigations), "generation", res[i].gen)
		}
		n.acked, n.boot, n.gen, n.err = v, res[i].boot, res[i].gen, nil
	}
}

// put sends body as the node's complete state.
func (b *Backend) put(ctx context.Context, n *nodeState, body []byte) (boot string, gen uint64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimSuffix(n.cfg.URL, "/")+"/v1/state", bytes.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		return "", 0, unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return "", 0, refusal(resp)
	}
	gen, _ = strconv.ParseUint(resp.Header.Get(agent.HeaderGeneration), 10, 64)
	return resp.Header.Get(agent.HeaderBoot), gen, nil
}

// unreachable shortens a transport error for the status note.
func unreachable(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			err = inner
		}
	}
	return fmt.Errorf("unreachable: %w", err)
}

// refusal reads a node's error answer.
func refusal(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var e agent.ErrorResponse
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return fmt.Errorf("refused (%d): %s", resp.StatusCode, msg)
}

// report is the outcome last reported for a key: its shape is the status
// and the note without the measured rates, and at when it was reported.
type report struct {
	a     divert.Applied
	shape string
	at    time.Time
}

// MeasuredNoteInterval is how often at most an outcome is reported again
// when only the measured rates in its note changed (a change of status or
// of anything else in the note is reported at the next poll): every report
// is a write of the mitigation's record and a notification.
const MeasuredNoteInterval = time.Minute

// outcomeLocked is k's outcome from what the nodes accepted and measured,
// and its shape (see report).
func (b *Backend) outcomeLocked(k divert.Key) (divert.Applied, string) {
	b.seq++
	if why, ok := b.skipped[k]; ok && b.sent >= b.since[k] {
		d := "not sent to the nodes: " + why
		return divert.Applied{Status: dots.StatusInProgress, Detail: d, Seq: b.seq}, d
	}
	var at, not []string
	for _, n := range b.nodes {
		switch {
		case n.err == nil && n.acked >= b.since[k]:
			at = append(at, n.cfg.Name)
		case n.err != nil:
			not = append(not, fmt.Sprintf("%s (%v)", n.cfg.Name, n.err))
		default:
			not = append(not, n.cfg.Name+" (pending)")
		}
	}
	var parts, shape []string
	over, overAt := "", []string(nil)
	if len(at) > 0 {
		over, overAt = b.overLocked(k)
	}
	if over != "" {
		parts = append(parts, over)
		shape = append(shape, "over capacity at "+strings.Join(overAt, ", "))
	}
	if len(at) > 0 {
		parts = append(parts, "scrubbing at "+strings.Join(at, ", "))
	}
	if len(not) > 0 {
		parts = append(parts, "not at "+strings.Join(not, "; "))
	}
	if _, spared := splitNamed(b.active[k], b.cfg.Names); len(spared) > 0 {
		parts = append(parts, joinPrefixes(spared)+" from names: steered and counted, nothing dropped (names: "+NamesScrubOnlyNamedPorts+")")
	}
	shape = append(shape, parts[len(shape):]...) // the rest has no measured value

	if r := b.ratesLocked(k); r != "" {
		parts = append(parts, r)
		shape = append(shape, "rates")
	}
	a := divert.Applied{Status: dots.StatusInProgress, Detail: strings.Join(parts, "; "), Seq: b.seq}
	switch {
	case over != "":
		a.Status = dots.StatusExceededCapability
	case len(at) > 0:
		a.Status = dots.StatusMitigated
	}
	return a, fmt.Sprintf("%d: %s", a.Status, strings.Join(shape, "; "))
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// reportChanged sends Updates for every key whose outcome changed since
// it was last reported (only its rates: see MeasuredNoteInterval).
func (b *Backend) reportChanged() {
	type upd struct {
		k divert.Key
		a divert.Applied
	}
	var out []upd
	now := b.opts.Now()
	b.mu.Lock()
	keys := make([]divert.Key, 0, len(b.active))
	for k := range b.active {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y divert.Key) int { return strings.Compare(x.String(), y.String()) })
	for _, k := range keys {
		a, shape := b.outcomeLocked(k)
		old, ok := b.reported[k]
		if ok && (old.a.Status == a.Status && old.a.Detail == a.Detail || old.shape == shape && now.Sub(old.at) < MeasuredNoteInterval) {
			continue
		}
		b.reported[k] = report{a, shape, now}
		out = append(out, upd{k, a})
	}
	b.mu.Unlock()
	if b.opts.Updates == nil {
		return
	}
	for _, u := range out {
		b.opts.Updates(Name, u.k, u.a)
	}
}
