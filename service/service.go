package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
	"github.com/levee-dots/levee/dotsserver/session"
	"github.com/levee-dots/levee/escalate"
	"github.com/levee-dots/levee/store"
)

// Domain is a DOTS client domain as the service sees it: its name (for
// per-domain policy) and the address space it owns.
type Domain struct {
	Name     string
	Prefixes []netip.Prefix
}

// Owns reports whether p lies inside the domain's prefixes.
func (d *Domain) Owns(p netip.Prefix) bool {
	for _, own := range d.Prefixes {
		if own.Addr().BitLen() == p.Addr().BitLen() && own.Bits() <= p.Bits() && own.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// Client is an authenticated DOTS client: the cuid it speaks as and its domain.
type Client struct {
	CUID   string
	Domain *Domain
}

// Resolver resolves target-fqdn and target-uri hosts and says how long the
// answer may be kept (the record TTL).
type Resolver interface {
	Resolve(ctx context.Context, name string) ([]netip.Addr, time.Duration, error)
}

// Options configure a Service.
type Options struct {
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
	Store  Store

	// Backends divert accepted mitigations; none means no mitigator is
	// configured (requests are kept, nothing is diverted, and status says so).
	Backends []divert.Diverter
	Resolver Resolver // nil: the system resolver with a 60 s TTL
	// ResolveTimeout bounds name resolution of one request (default 2 s).
	ResolveTimeout time.Duration
	// IsDiversionAddr tells this server's own diversion addresses (the
	// scrubbing addresses the DNS backend writes): never counted as the
	// address of a name.
	IsDiversionAddr func(netip.Addr) bool

	Policy mitigation.Policy
	Ranges session.Ranges // zero: session.DefaultRanges
	// Ladders are the escalation ladders by client domain: the
	// countermeasure of a request that does not name one, and when it
	// moves to the next (package escalate).
	Ladders map[string]escalate.Ladder
}

// Service is the DOTS server's mitigation service. All methods are safe for
// concurrent use.
type Service struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	orch *divert.Orchestrator

	mu       sync.Mutex // guards book, configs, bindings, meters
	book     *mitigation.Book
	configs  map[string]session.Config // by cuid
	bindings map[string]string         // cuid -> spki hash
	meters   map[mitigation.Key]*meter
	// lastFlush is when the counters were last written.
	lastFlush time.Time
	// Data channel (data.go): registered clients by cuid, the ACLs handed
	// to the backends, and their measured counters.
	data      map[string]*dataClient
	aclOn     map[divert.Key]*aclRec
	aclMeters map[divert.Key]*meter

	j      *journal
	notes  [notifyShards]*notifyQueue
	watchM sync.Mutex
	watch  map[int]func(Event)
	nextW  int

	wg        sync.WaitGroup
	stop      chan struct{}
	startOnce sync.Once
	closeOnce sync.Once
}

// New builds the service and restores its state from the store: expired
// requests are removed; the active ones are handed to the backends again by
// Start (re-announced exactly, nothing else).
func New(opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errors.New("service: a store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Resolver == nil {
		opts.Resolver = SystemResolver{}
	}
	if opts.ResolveTimeout == 0 {
		opts.ResolveTimeout = 2 * time.Second
	}
	if opts.IsDiversionAddr == nil {
		opts.IsDiversionAddr = func(netip.Addr) bool { return false }
	}
	if opts.Ranges == (session.Ranges{}) {
		opts.Ranges = session.DefaultRanges
	}
	if err := opts.Ranges.Validate(); err != nil {
		return nil, fmt.Errorf("service: session configuration ranges: %w", err)
	}
	s := &Service{opts: opts, log: opts.Logger, now: opts.Now, orch: divert.NewOrchestrator(opts.Backends...),
		book: mitigation.NewBook(opts.Policy), configs: map[string]session.Config{}, bindings: map[string]string{},
		meters: map[mitigation.Key]*meter{}, watch: map[int]func(Event){}, stop: make(chan struct{}),
		data: map[string]*dataClient{}, aclOn: map[divert.Key]*aclRec{}, aclMeters: map[divert.Key]*meter{}}
	s.orch.SetLogger(s.log)
	s.j = newJournal(opts.Store, &s.mu)
	for i := range s.notes {
		s.notes[i] = newNotifyQueue()
	}
	if err := s.restore(); err != nil {
		s.j.close()
		return nil, err
	}
	return s, nil
}

// Buckets of the store.
const (
	bucketMitigations = "mitigations"
	bucketConfigs     = "session-configs"
	bucketBindings    = "cuid-bindings"
	bucketCounters    = "counters"
)

func (s *Service) restore() error {
	n := 0
	err := s.opts.Store.ForEach(bucketMitigations, func(key string, v []byte) error {
		var r mitigation.Record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("mitigation %s: %w", key, err)
		}
		if _, ok := s.ladderOf(r.Domain, &r.Scope); !ok && r.Escalation != nil {
			// The domain's ladder was removed from the configuration: the
			// request gets the domain's countermeasure again.
			s.log.Info("escalation ladder gone: the mitigation gets its domain's countermeasure", "cuid", r.CUID, "mid", r.MID, "was", r.Escalation.Kind)
			r.Escalation = nil
		}
		s.book.Restore(&r)
		n++
		return nil
	})
	if err != nil {
		return fmt.Errorf("service: restore: %w", err)
	}
	err = s.opts.Store.ForEach(bucketConfigs, func(key string, v []byte) error {
		var c session.Config
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("session config %s: %w", key, err)
		}
		s.configs[key] = c
		return nil
	})
	if err != nil {
		return fmt.Errorf("service: restore: %w", err)
	}
	err = s.opts.Store.ForEach(bucketBindings, func(key string, v []byte) error {
		s.bindings[key] = string(v)
		return nil
	})
	if err != nil {
		return fmt.Errorf("service: restore: %w", err)
	}
	if err := s.restoreData(); err != nil {
		return fmt.Errorf("service: restore: %w", err)
	}
	if err := s.restoreCounters(); err != nil {
		return fmt.Errorf("service: restore counters: %w", err)
	}
	s.mu.Lock()
	res := s.book.Tick(s.now())
	done := s.j.add(changeOps(res.Changes), func() { s.book.Undo(res) })
	active := len(s.book.Active())
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		return fmt.Errorf("service: restore: %w", err)
	}
	s.log.Info("state restored", "mitigations", n, "expired", len(res.Notify), "active", active)
	return nil
}

// Start hands every active mitigation to the backends (each converges on
// exactly that set before it takes anything else) and starts the workers
// that deliver changes to watchers. It does not wait for the backends:
// requests are served at once, and their diversions queue behind the
// re-announcement.
func (s *Service) Start() {
	s.startOnce.Do(func() {
		s.mu.Lock()
		active := s.book.Active()
		s.mu.Unlock()
		all := make([]divert.Diversion, 0, len(active))
		for _, r := range active {
			all = append(all, diversionOf(r))
		}
		s.mu.Lock()
		all = append(all, s.enforcedACLsLocked()...)
		s.mu.Unlock()
		s.Watch(s.aclEvent)
		s.orch.Start(all, s.diversionReported)
		for i, q := range s.notes {
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.runNotify(i, q) }()
		}
		if !s.orch.Configured() {
			for _, r := range active {
				s.setOutcome(r.Key, divert.Outcome{Status: dots.StatusInProgress, Note: divert.NoMitigator})
			}
		}
	})
}

// Close stops the backends' lanes (no backend call runs after it returns),
// delivers nothing more, and flushes the store queue.
func (s *Service) Close() {
	s.closeOnce.Do(func() {
		s.orch.Close()
		close(s.stop)
		s.wg.Wait()
		s.mu.Lock()
		s.flushCountersLocked()
		s.mu.Unlock()
		s.j.close()
	})
}

// Configured reports whether any diversion backend is configured.
func (s *Service) Configured() bool { return s.orch.Configured() }

// Ranges returns the session-configuration ranges of RFC 9132 §4.5.
func (s *Service) Ranges() session.Ranges { return s.opts.Ranges }

func recordKey(k mitigation.Key) string { return fmt.Sprintf("%s/%010d", k.CUID, k.MID) }

// changeOps turns a result's changes into store writes.
func changeOps(changes []mitigation.Change) []store.Op {
	ops := make([]store.Op, 0, len(changes))
	for _, c := range changes {
		if c.Deleted {
			ops = append(ops, store.Op{Bucket: bucketMitigations, Key: recordKey(c.Key), Delete: true},
				store.Op{Bucket: bucketCounters, Key: recordKey(c.Key), Delete: true})
			continue
		}
		b, err := json.Marshal(c.Record)
		if err != nil {
			panic(fmt.Sprintf("service: encoding a record cannot fail: %v", err))
		}
		ops = append(ops, store.Op{Bucket: bucketMitigations, Key: recordKey(c.Key), Value: b})
	}
	return ops
}

// commitLocked queues res's changes for the disk (undone if the write
// fails), its diversions for the backends and its notifications, all
// after the commit. It must be called with s.mu held, so that disk order,
// diversion order and notification order are state order.
func (s *Service) commitLocked(res *mitigation.Result) *commit {
	if len(res.Changes) == 0 {
		return committed
	}
	done := s.j.add(changeOps(res.Changes), func() { s.book.Undo(res) })
	s.notifyLocked(done, res, s.diversionsOf(res))
	return done
}

// diversionsOf returns, per client, the function that hands res's
// diversions to the backends: the new ones first, then the withdrawals
// (make before break).
func (s *Service) diversionsOf(res *mitigation.Result) map[string]func() {
	if len(res.Activate) == 0 && len(res.Withdraw) == 0 {
		return nil
	}
	type work struct {
		apply    []divert.Diversion
		withdraw []mitigation.Key
	}
	byClient := map[string]*work{}
	of := func(cuid string) *work {
		if byClient[cuid] == nil {
			byClient[cuid] = &work{}
		}
		return byClient[cuid]
	}
	for _, r := range res.Activate {
		w := of(r.CUID)
		w.apply = append(w.apply, diversionOf(r))
	}
	for _, k := range res.Withdraw {
		w := of(k.CUID)
		w.withdraw = append(w.withdraw, k)
	}
	out := make(map[string]func(), len(byClient))
	for cuid, w := range byClient {
		out[cuid] = func() {
			for _, d := range w.apply {
				s.orch.Apply(d)
			}
			for _, k := range w.withdraw {
				s.orch.Withdraw(divert.Key{CUID: k.CUID, MID: k.MID})
				s.mu.Lock()
				delete(s.meters, k)
				s.mu.Unlock()
			}
		}
	}
	return out
}

// Tick ends what is due: active-but-terminating periods and lifetimes.
func (s *Service) Tick() {
	s.mu.Lock()
	res := s.book.Tick(s.now())
	s.commitLocked(res)
	s.escalateLocked(nil)
	for _, r := range res.Notify {
		delete(s.meters, r.Key)
	}
	if len(s.meters) > 0 && s.now().Sub(s.lastFlush) >= counterFlushEvery {
		s.flushCountersLocked()
	}
	s.mu.Unlock()
	for _, r := range res.Notify {
		s.log.Info("mitigation ended", "cuid", r.CUID, "mid", r.MID)
	}
	s.tickData()
}

// SessionLost activates a client's trigger-mitigation=false requests
// (RFC 9132 §4.7) and withdraws the immediate ones they overlap.
func (s *Service) SessionLost(cuid string) {
	s.mu.Lock()
	res := s.book.SessionLost(cuid, s.now())
	s.commitLocked(res)
	s.mu.Unlock()
	if len(res.Activate) > 0 {
		s.log.Warn("signal channel lost: preconfigured mitigations activated", "cuid", cuid, "count", len(res.Activate))
	}
}

// KnownClients returns every cuid the service holds state for.
func (s *Service) KnownClients() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range s.book.Active() {
		seen[r.CUID] = true
	}
	for c := range s.configs {
		seen[c] = true
	}
	for c := range s.bindings {
		seen[c] = true
	}
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

func diversionOf(r *mitigation.Record) divert.Diversion {
	// target-uri: the scheme and the port add to the ports and protocols
	// (RFC 9132 §4.4.1.1); the host's addresses are in Prefixes.
	ports, protocols := r.Scope.Filter()
	d := divert.Diversion{Key: divert.Key{CUID: r.CUID, MID: r.MID}, Domain: r.Domain, Prefixes: r.Prefixes,
		FromNames: r.FromNames, Ports: ports,
		FQDNs:   append(slices.Clone(r.Scope.TargetFQDN), uriHosts(r.Scope.TargetURI)...),
		Expires: r.Expires, Countermeasure: r.Scope.Countermeasure}
	if d.Countermeasure == "" && r.Escalation != nil {
		d.Countermeasure = r.Escalation.Kind
	}
	for _, p := range protocols {
		d.Protocols = append(d.Protocols, uint8(p))
	}
	return d
}

func uriHosts(uris []string) []string {
	var out []string
	for _, u := range uris {
		if h, err := dots.URIHost(u); err == nil {
			if _, err := netip.ParseAddr(h); err != nil {
				out = append(out, h)
			}
		}
	}
	return out
}
