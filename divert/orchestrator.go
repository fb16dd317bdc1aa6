package divert

import (
	"context"

	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/levee-dots/levee/dots"
)

// Outcome is the combined result of applying one diversion.
type Outcome struct {
	Status dots.Status // 1 in progress, 2 mitigated, 4 exceeded capability
	Note   string      // human-readable: what each backend applied or why it failed
}

// NoMitigator is the note reported when no backend is configured.
const NoMitigator = "no mitigator is configured on this server: the request is accepted and kept, but no traffic is diverted"

// Lanes is the number of ordered queues per backend. A client's operations
// always go to the same lane of each backend, in order; a slow call for one
// client does not hold up the clients of other lanes, and a stuck backend
// never holds up another backend.
const Lanes = 8

// CallTimeout bounds one backend call.
const CallTimeout = 30 * time.Second

// Handler is implemented by backends that can tell at once, without I/O,
// whether a diversion concerns them. The others count as pending for every
// diversion until they answer.
type Handler interface {
	Handles(d Diversion) bool
}

// Orchestrator fans diversions out to backends, each backend with its own
// ordered lanes, and combines the outcomes the backends report.
type Orchestrator struct {
	backends []Diverter
	report   Updates
	log      *slog.Logger

	mu   sync.Mutex
	want map[Key]bool               // keys applied and not withdrawn since
	last map[Key]map[string]Applied // latest outcome per backend
	seq  map[Key]map[string]uint64  // highest Seq taken per backend

	lanes  []*lane // backend-major: lanes[b*Lanes+i]
	synced []chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed bool
}

// NewOrchestrator returns an orchestrator over the given backends (none is allowed).
func NewOrchestrator(backends ...Diverter) *Orchestrator {
	ctx, cancel := context.WithCancel(context.Background())
	return &Orchestrator{backends: backends, want: map[Key]bool{}, last: map[Key]map[string]Applied{},
		seq: map[Key]map[string]uint64{}, ctx: ctx, cancel: cancel}
}

// Configured reports whether any backend is configured.
func (o *Orchestrator) Configured() bool { return len(o.backends) > 0 }

// Check asks every backend that checks whether it would refuse d.
func (o *Orchestrator) Check(d Diversion) error {
	for _, b := range o.backends {
		if c, ok := b.(Checker); ok {
			if err := c.Check(d); err != nil {
				return fmt.Errorf("%s: %w", b.Name(), err)
			}
		}
	}
	return nil
}

// Start starts every backend's lanes. First each backend converges on
// exactly all (Sync, or Apply of each) — its lanes wait for that — then
// the queued operations run in order. Every outcome, from a lane or from
// the backend itself later, is handed to report.
func (o *Orchestrator) Start(all []Diversion, report Updates) {
	o.mu.Lock()
	o.report = report
	for _, d := range all {
		o.want[d.Key] = true
	}
	o.mu.Unlock()
	for bi, b := range o.backends {
		synced := make(chan struct{})
		o.synced = append(o.synced, synced)
		for i := 0; i < Lanes; i++ {
			o.lanes = append(o.lanes, newLane(b, synced))
		}
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			defer close(synced)
			o.sync(b, all)
		}()
		for i := 0; i < Lanes; i++ {
			l := o.lanes[bi*Lanes+i]
			o.wg.Add(1)
			go func() { defer o.wg.Done(); o.runLane(l) }()
		}
	}
}

func (o *Orchestrator) sync(b Diverter, all []Diversion) {
	defer o.recoverCall(b, Key{})
	if s, ok := b.(Syncer); ok {
		if err := s.Sync(o.ctx, all); err != nil && o.ctx.Err() == nil {
			o.Report(b.Name(), Key{}, Applied{Status: dots.StatusInProgress, Detail: "sync failed: " + err.Error()})
		}
		return
	}
	for _, d := range all {
		o.call(b, op{d: d})
	}
}

// Apply queues d on every backend (an idempotent upsert by key).
func (o *Orchestrator) Apply(d Diversion) {
	o.mu.Lock()
	o.want[d.Key] = true
	for _, b := range o.backends {
		if h, ok := b.(Handler); ok && !h.Handles(d) {
			// Not this backend's (any more): its outcome no longer counts.
			delete(o.last[d.Key], b.Name())
			continue
		}
		o.setLocked(b.Name(), d.Key, Applied{Status: dots.StatusInProgress, Detail: "pending"}, true)
	}
	o.mu.Unlock()
	o.push(d.Key, op{d: d})
}

// Withdraw queues the removal of k from every backend.
func (o *Orchestrator) Withdraw(k Key) {
	o.mu.Lock()
	delete(o.want, k)
	delete(o.last, k)
	delete(o.seq, k)
	o.mu.Unlock()
	o.push(k, op{withdraw: true, d: Diversion{Key: k}})
}

func (o *Orchestrator) push(k Key, p op) {
	if len(o.lanes) == 0 {
		return
	}
	i := laneOf(k.CUID)
	for bi := range o.backends {
		o.lanes[bi*Lanes+i].push(p)
	}
}

func laneOf(cuid string) int {
	h := fnv.New32a()
	h.Write([]byte(cuid))
	return int(h.Sum32() % Lanes)
}

// Report takes a backend's outcome for k: from a lane after Apply, or from
// the backend itself later (a neighbor came up). An outcome older than one
// already taken (by Seq), or for a key withdrawn since, is dropped. The
// report function passed to Start is called with it.
func (o *Orchestrator) Report(backend string, k Key, a Applied) {
	o.mu.Lock()
	if k != (Key{}) && !o.setLocked(backend, k, a, false) {
		o.mu.Unlock()
		return
	}
	report := o.report
	o.mu.Unlock()
	if report != nil {
		report(backend, k, a)
	}
}

// setLocked records a; it reports false when a is stale or k unwanted.
func (o *Orchestrator) setLocked(backend string, k Key, a Applied, pending bool) bool {
	if !o.want[k] {
		return false
	}
	if !pending && a.Seq != 0 {
		if a.Seq < o.seq[k][backend] {
			return false
		}
		if o.seq[k] == nil {
			o.seq[k] = map[string]uint64{}
		}
		o.seq[k][backend] = a.Seq
	}
	m := o.last[k]
	if m == nil {
		m = map[string]Applied{}
		o.last[k] = m
	}
	m[backend] = a
	return true
}

// Combined is the outcome over every backend that handles the key: 4 if
// any refused it for capability, 2 only when all of them diverted, else 1.
func (o *Orchestrator) Combined(k Key) Outcome {
	if len(o.backends) == 0 {
		return Outcome{Status: dots.StatusInProgress, Note: NoMitigator}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var notes []string
	handled, mitigated, exceeded := 0, 0, false
	for _, b := range o.backends {
		a, ok := o.last[k][b.Name()]
		if !ok || a.Status == 0 {
			continue
		}
		handled++
		switch a.Status {
		case dots.StatusMitigated:
			mitigated++
		case dots.StatusExceededCapability:
			exceeded = true
		}
		if a.Detail != "" {
			notes = append(notes, b.Name()+": "+a.Detail)
		}
	}
	switch {
	case handled == 0:
		return Outcome{Status: dots.StatusInProgress, Note: "no configured mitigator handles this scope"}
	case exceeded:
		return Outcome{Status: dots.StatusExceededCapability, Note: strings.Join(notes, "; ")}
	case mitigated == handled:
		return Outcome{Status: dots.StatusMitigated, Note: strings.Join(notes, "; ")}
	}
	return Outcome{Status: dots.StatusInProgress, Note: strings.Join(notes, "; ")}
}

// Close cancels the calls under way and waits for every lane: no backend
// call runs after it returns. Queued operations are dropped (the state
// they came from is durable; a restart converges on it again).
func (o *Orchestrator) Close() {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	o.mu.Unlock()
	o.cancel()
	for _, l := range o.lanes {
		l.stop()
	}
	o.wg.Wait()
}

type op struct {
	d        Diversion
	withdraw bool
}

// call runs one operation on one backend, bounded in time, and reports
// its outcome. A panicking backend is recovered and reported as failed.
func (o *Orchestrator) call(b Diverter, p op) {
	defer o.recoverCall(b, p.d.Key)
	ctx, cancel := context.WithTimeout(o.ctx, CallTimeout)
	defer cancel()
	if p.withdraw {
		if err := b.Withdraw(ctx, p.d.Key); err != nil && o.ctx.Err() == nil {
			o.Report(b.Name(), p.d.Key, Applied{Detail: "withdraw failed: " + err.Error()})
			o.logf(b, p.d.Key, "withdraw", err)
		}
		return
	}
	a, err := b.Apply(ctx, p.d)
	if o.ctx.Err() != nil {
		return
	}
	if err != nil {
		o.logf(b, p.d.Key, "apply", err)
		if a.Status == 0 {
			a = Applied{Status: dots.StatusInProgress, Detail: "failed: " + err.Error(), Seq: a.Seq}
		}
	}
	o.Report(b.Name(), p.d.Key, a)
}

// SetLogger sets where failed backend calls are logged (default: nowhere).
func (o *Orchestrator) SetLogger(l *slog.Logger) { o.log = l }

func (o *Orchestrator) logf(b Diverter, k Key, what string, err error) {
	if o.log != nil {
		o.log.Error("diversion "+what+" failed", "diverter", b.Name(), "cuid", k.CUID, "mid", k.MID, "err", err)
	}
}

func (o *Orchestrator) recoverCall(b Diverter, k Key) {
	if v := recover(); v != nil {
		err := fmt.Errorf("panic: %v\n%s", v, debug.Stack())
		o.logf(b, k, "call", err)
		if k != (Key{}) {
			o.Report(b.Name(), k, Applied{Status: dots.StatusInProgress, Detail: "failed: internal error in the backend"})
		}
	}
}

// lane is one ordered queue of operations for one backend.
type lane struct {
	b      Diverter
	synced <-chan struct{}
	mu     sync.Mutex
	items  []op
	ready  chan struct{}
	done   chan struct{}
	once   sync.Once
}

func newLane(b Diverter, synced <-chan struct{}) *lane {
	return &lane{b: b, synced: synced, ready: make(chan struct{}, 1), done: make(chan struct{})}
}

func (l *lane) push(p op) {
	l.mu.Lock()
	l.items = append(l.items, p)
	l.mu.Unlock()
	select {
	case l.ready <- struct{}{}:
	default:
	}
}

func (l *lane) take() []op {
	l.mu.Lock()
	defer l.mu.Unlock()
	items := l.items
	l.items = nil
	return items
}

func (l *lane) stop() { l.once.Do(func() { close(l.done) }) }

func (o *Orchestrator) runLane(l *lane) {
	select {
	case <-l.synced:
	case <-l.done:
		return
	}
	for {
		select {
		case <-l.ready:
			for _, p := range l.take() {
				select {
				case <-l.done:
					return
				default:
				}
				o.call(l.b, p)
			}
		case <-l.done:
			return
		}
	}
}
