package mitigation

import (
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/escalate"
)

// Policy is the server's local policy for mitigation requests.
type Policy struct {
	// AllowIndefinite grants lifetime -1 when asked; otherwise MaxLifetime is granted.
	AllowIndefinite bool
	// MaxLifetime caps granted lifetimes (0: no cap; an indefinite request
	// that is not allowed then gets DefaultLifetime).
	MaxLifetime time.Duration
	// DefaultLifetime is granted for a refused indefinite request when there is no cap (RFC 9132 default 3600 s).
	DefaultLifetime time.Duration
	// Terminating is the active-but-terminating period (default 120 s), doubled
	// for each re-request within it, up to MaxTerminating (default 300 s).
	Terminating, MaxTerminating time.Duration
	// RejectOtherClientOverlap answers 4.09 instead of 2.01 when a request
	// overlaps another client's active request.
	RejectOtherClientOverlap bool
	// MaxPerClient bounds the requests one client may hold (0: 1024).
	MaxPerClient int
	// AllowChosenCUID binds any unbound cuid a client speaks as, not only
	// the one derived from its certificate (RFC 9132 §4.4.1); the service
	// applies it.
	AllowChosenCUID bool
}

func (p *Policy) defaults() {
	if p.DefaultLifetime == 0 {
		p.DefaultLifetime = time.Hour
	}
	if p.Terminating == 0 {
		p.Terminating = 120 * time.Second
	}
	if p.MaxTerminating == 0 {
		p.MaxTerminating = 300 * time.Second
	}
	if p.MaxPerClient == 0 {
		p.MaxPerClient = 1024
	}
}

// Book holds every client's mitigation requests.
type Book struct {
	policy   Policy
	byClient map[string]map[uint32]*Record
	idx      *index
}

// NewBook returns an empty book with the given policy.
func NewBook(p Policy) *Book {
	p.defaults()
	return &Book{policy: p, byClient: map[string]map[uint32]*Record{}, idx: newIndex()}
}

// Result is what an operation changed. The caller persists Changes, then
// answers with Code, then applies Activate and Withdraw to the mitigator
// (Activate first: make before break) and notifies observers of Notify (and
// of the clients in Changes). If persisting fails, Undo puts the book back.
type Result struct {
	Code       dots.Code
	Record     *Record                   // the request the operation was about (a copy)
	Conflict   *dots.ConflictInformation // conflict-information for the response
	Superseded []uint32                  // lower mids of the same client this request replaced
	Changes    []Change
	Activate   []*Record // start diverting (copies)
	Withdraw   []Key     // stop diverting
	Notify     []*Record // final states to notify before they vanish (status 6)

	prev []prevRecord // each changed request as it was before
}

// Change is one record to write (or delete) in the store.
type Change struct {
	Key     Key
	Record  *Record // nil when deleted
	Deleted bool
}

func (res *Result) put(r *Record) {
	c := *r
	res.Changes = append(res.Changes, Change{Key: r.Key, Record: &c})
}

func (res *Result) del(k Key) { res.Changes = append(res.Changes, Change{Key: k, Deleted: true}) }

// touch remembers r as it is, before the operation changes it. A request
// touched twice is remembered twice; Undo, going backwards, ends with the
// first (oldest) state.
func (res *Result) touch(r *Record) {
	if n := len(res.prev); n > 0 && res.prev[n-1].key == r.Key {
		return
	}
	res.prev = append(res.prev, prevRecord{key: r.Key, rec: clone(r)})
}

// touchNew remembers that k did not exist before the operation.
func (res *Result) touchNew(k Key) {
	res.prev = append(res.prev, prevRecord{key: k})
}

// prevRecord is a request as it was before an operation (rec nil: absent).
type prevRecord struct {
	key Key
	rec *Record
}

// Undo puts back every request res changed as it was before. Results must
// be undone newest first. It is how a change whose durable write failed
// leaves nothing behind: the client's retry then finds the book as it was.
func (b *Book) Undo(res *Result) {
	for i := len(res.prev) - 1; i >= 0; i-- {
		p := res.prev[i]
		if cur, ok := b.byClient[p.key.CUID][p.key.MID]; ok {
			b.drop(cur)
		}
		if p.rec != nil {
			b.Restore(p.rec)
		}
	}
}

// Restore loads a persisted record (at start-up).
func (b *Book) Restore(r *Record) {
	m := b.byClient[r.CUID]
	if m == nil {
		m = map[uint32]*Record{}
		b.byClient[r.CUID] = m
	}
	if old, ok := m[r.MID]; ok {
		b.idx.del(old)
	}
	c := *r
	m[r.MID] = &c
	b.idx.add(&c)
}

// drop takes r out of the book.
func (b *Book) drop(r *Record) {
	delete(b.byClient[r.CUID], r.MID)
	b.idx.del(r)
	if len(b.byClient[r.CUID]) == 0 {
		delete(b.byClient, r.CUID)
	}
}

// apply runs event ev on the existing request r through the transition
// table, recording the change, the effect and the previous state in res.
func (b *Book) apply(r *Record, ev Event, res *Result, now time.Time) (Step, bool) {
	step, ok := Transition(r.Status, ev)
	if !ok {
		return step, false
	}
	res.touch(r)
	if step.Effect == StopDiverting {
		res.Withdraw = append(res.Withdraw, r.Key)
	}
	if step.Remove {
		if step.To == dots.StatusTerminated {
			final := clone(r)
			final.Status = dots.StatusTerminated
			res.Notify = append(res.Notify, final)
		}
		b.drop(r)
		res.del(r.Key)
		return step, true
	}
	r.Status = step.To
	switch {
	case step.Effect == Divert && ev != EvReRequest:
		r.Start = now
	case step.To == dots.StatusSignalLoss:
		r.Start = time.Time{}
	}
	if step.Effect == Divert {
		res.Activate = append(res.Activate, clone(r))
	}
	res.put(r)
	return step, true
}

// overlapping returns the requests (of any client) whose targets overlap r.
func (b *Book) overlapping(r *Record) []*Record {
	var out []*Record
	check := func(o *Record) {
		if o != r && r.overlaps(o) {
			out = append(out, o)
		}
	}
	b.idx.candidates(r, check)
	// Map order is random: sort, so withdrawals and stored changes come out
	// in the same order every time.
	sort.Slice(out, func(i, j int) bool {
		if out[i].CUID != out[j].CUID {
			return out[i].CUID < out[j].CUID
		}
		return out[i].MID < out[j].MID
	})
	return out
}

// PutRequest is a validated PUT /mitigate/cuid=…/mid=… request.
type PutRequest struct {
	CUID, Domain string
	MID          uint32
	Req          *dots.Request
	Prefixes     []netip.Prefix // every address covered, after ownership checks and name resolution
	Efficacy     bool           // If-Match present and empty (RFC 9132 §4.4.3)
	Note         string         // initial note (e.g. that no mitigator is configured)
	// FromNames are the Prefixes that came from resolving names, and
	// NamesExpire when they are to be resolved again (zero: no names).
	FromNames   []netip.Prefix
	NamesExpire time.Time
	// Readdress, on a refresh, replaces the addresses resolved from names
	// with Prefixes/FromNames (re-resolved after their TTL ran out).
	Readdress bool
	// Escalation is the first step of a new request on its domain's
	// escalation ladder (nil: none).
	Escalation *escalate.Position
}

// Put handles creation, refresh and efficacy updates.
func (b *Book) Put(in PutRequest, now time.Time) (*Result, error) {
	mine := b.byClient[in.CUID]
	if cur, ok := mine[in.MID]; ok && cur.Status != dots.StatusTerminated {
		if in.Efficacy && cur.Status == dots.StatusClientWithdrawn {
			// RFC 9132 §4.4.3: an efficacy update overtaken by the DELETE
			// is ignored; it must not bring the request back.
			return &Result{}, nil
		}
		return b.update(cur, in, now)
	}
	if in.Efficacy {
		// RFC 9132 §4.4.3: an efficacy update for an unknown mid is ignored.
		return &Result{}, nil
	}
	if in.Req.Lifetime == 0 {
		return nil, dots.Errorf(dots.BadRequest, "lifetime is mandatory")
	}
	rec := &Record{Key: Key{CUID: in.CUID, MID: in.MID}, Domain: in.Domain, Scope: requestScope(in.Req),
		Prefixes: in.Prefixes, FromNames: in.FromNames, NamesExpire: in.NamesExpire, Trigger: in.Req.Trigger, Note: in.Note,
		Escalation: in.Escalation}
	res := &Result{Code: dots.Created}
	// Check everything before changing anything: a refused request must
	// leave the book as it was (the caller persists nothing on error).
	superseded, err := b.sameClientOverlap(rec)
	if err != nil {
		return nil, err
	}
	if len(mine)-len(superseded) >= b.policy.MaxPerClient {
		return nil, dots.Errorf(dots.ServiceUnavailable, "client holds %d mitigation requests, the most this server allows", b.policy.MaxPerClient)
	}
	if err := b.otherClientOverlap(rec, res, now); err != nil {
		return nil, err
	}
	for _, o := range superseded {
		if _, ok := b.apply(o, EvSupersede, res, now); ok {
			res.Superseded = append(res.Superseded, o.MID)
		}
	}
	b.grant(rec, in.Req.Lifetime, now)
	ev := EvPreconfigure
	if rec.Trigger {
		ev = EvCreate
	}
	step, _ := Transition(Absent, ev)
	res.touchNew(rec.Key)
	rec.Status = step.To
	if step.Effect == Divert {
		rec.Start = now
		// The new diversion goes first, then the ones it replaces are
		// withdrawn: make before break.
		res.Activate = append(res.Activate, clone(rec))
		b.deactivatePreconfigured(rec, res, now)
	}
	b.Restore(rec)
	res.put(rec)
	res.Record = clone(rec)
	return res, nil
}

// update is a PUT on an existing mid: refresh, efficacy update, or the
// re-request of a request in its active-but-terminating period.
func (b *Book) update(cur *Record, in PutRequest, now time.Time) (*Result, error) {
	if !cur.sameParams(&in.Req.Scope, in.Req.Trigger) {
		return nil, dots.Errorf(dots.BadRequest, "mid %d exists with other parameters: a refresh or efficacy update may change only lifetime and attack-status; use a new mid", cur.MID)
	}
	if in.Efficacy && in.Req.Scope.AttackStatus == nil {
		return nil, dots.Errorf(dots.BadRequest, "an efficacy update (empty If-Match) requires attack-status")
	}
	res := &Result{Code: dots.Changed}
	res.touch(cur)
	if a := in.Req.Scope.AttackStatus; a != nil {
		if *a != cur.AttackStatus || cur.AttackSince.IsZero() {
			cur.AttackSince = now
		}
		cur.AttackStatus, cur.AttackAt = *a, now
	}
	if in.Req.Lifetime != 0 {
		b.grant(cur, in.Req.Lifetime, now)
	}
	readdressed := false
	if in.Readdress {
		cur.NamesExpire = in.NamesExpire
		if !slices.Equal(cur.Prefixes, in.Prefixes) {
			b.idx.del(cur)
			cur.Prefixes, cur.FromNames = in.Prefixes, in.FromNames
			b.idx.add(cur)
			readdressed = true
		}
	}
	if cur.Status == dots.StatusClientWithdrawn {
		// Re-requested within active-but-terminating: back to work, and the
		// next termination period grows (RFC 9132 §4.4.4).
		cur.TerminateAt = time.Time{}
		cur.Terminations++
		b.apply(cur, EvReRequest, res, now)
		res.Code = dots.Created
	} else {
		if readdressed && cur.Active() {
			res.Activate = append(res.Activate, clone(cur))
		}
		res.put(cur)
	}
	res.Record = clone(cur)
	return res, nil
}

// sameClientOverlap applies "higher mid wins" among one client's requests of
// the same trigger-mitigation type: it returns the lower-mid requests rec
// supersedes (for the caller to remove), or 4.09 when rec is the lower one.
func (b *Book) sameClientOverlap(rec *Record) ([]*Record, error) {
	var superseded []*Record
	var higher *Record // the lowest overlapping mid above rec's
	for _, o := range b.overlapping(rec) {
		if o.CUID != rec.CUID || o.Trigger != rec.Trigger || o.Status == dots.StatusClientWithdrawn || o.Status == dots.StatusTerminated {
			continue
		}
		if o.MID > rec.MID {
			if higher == nil || o.MID < higher.MID {
				higher = o
			}
			continue
		}
		superseded = append(superseded, o)
	}
	if higher != nil {
		ci := &dots.ConflictInformation{
			ConflictStatus: dots.Ptr(dots.ConflictInactiveOtherActive),
			ConflictCause:  dots.Ptr(dots.CauseOverlappingTargets),
			ConflictScope:  &dots.ConflictScope{MID: dots.Ptr(higher.MID), TargetPrefix: rec.overlapPrefixes(higher)},
		}
		return nil, &dots.Error{Code: dots.Conflict, Diag: "request overlaps mid " + uitoa(higher.MID) + " of this client, which is higher: mids must increase",
			Body: conflictBody(rec.MID, ci)}
	}
	return superseded, nil
}

// otherClientOverlap reports (or refuses) overlap with other clients' active requests.
func (b *Book) otherClientOverlap(rec *Record, res *Result, now time.Time) error {
	if !rec.Trigger {
		return nil
	}
	var hits []string
	var retry int64
	for _, o := range b.overlapping(rec) {
		if o.CUID == rec.CUID || !o.Active() || o.Status == dots.StatusClientWithdrawn {
			continue
		}
		hits = append(hits, rec.overlapPrefixes(o)...)
		// An indefinite winner (-1) leaves no retry-timer, whatever the order.
		if rem := o.Remaining(now); retry >= 0 && (rem < 0 || rem > retry) {
			retry = rem
		}
	}
	if len(hits) == 0 {
		return nil
	}
	slices.Sort(hits)
	hits = slices.Compact(hits)
	ci := &dots.ConflictInformation{ConflictCause: dots.Ptr(dots.CauseOverlappingTargets), ConflictScope: &dots.ConflictScope{TargetPrefix: hits}}
	if b.policy.RejectOtherClientOverlap {
		ci.ConflictStatus = dots.Ptr(dots.ConflictInactiveOtherActive)
		if retry >= 0 {
			ci.RetryTimer = dots.Ptr(uint32(min(retry, 1<<32-1)))
		}
		return &dots.Error{Code: dots.Conflict, Diag: "targets overlap an active mitigation of another client", Body: conflictBody(rec.MID, ci)}
	}
	ci.ConflictStatus = dots.Ptr(dots.ConflictActive)
	rec.Conflict, res.Conflict = ci, ci
	return nil
}

func conflictBody(mid uint32, ci *dots.ConflictInformation) *dots.Message {
	return &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{{MID: dots.Ptr(mid), ConflictInformation: ci}}}}
}

func (b *Book) grant(rec *Record, asked int64, now time.Time) {
	p := b.policy
	lt := asked
	if lt < 0 && !p.AllowIndefinite {
		lt = int64(p.DefaultLifetime / time.Second)
		if p.MaxLifetime > 0 {
			lt = int64(p.MaxLifetime / time.Second)
		}
	}
	if max := int64(p.MaxLifetime / time.Second); max > 0 && lt > max {
		lt = max
	}
	rec.Lifetime = lt
	rec.Expires = time.Time{}
	if lt >= 0 {
		rec.Expires = now.Add(time.Duration(lt) * time.Second)
	}
}

// Delete withdraws a request (RFC 9132 §4.4.4). It always succeeds with 2.02.
func (b *Book) Delete(k Key, now time.Time) *Result {
	res := &Result{Code: dots.Deleted}
	r, ok := b.byClient[k.CUID][k.MID]
	if !ok {
		return res
	}
	if step, ok := Transition(r.Status, EvClientDelete); !ok || step.Remove {
		b.apply(r, EvClientDelete, res, now)
		return res
	}
	period := b.policy.Terminating << min(r.Terminations, 8)
	if period > b.policy.MaxTerminating {
		period = b.policy.MaxTerminating
	}
	res.touch(r)
	r.TerminateAt = now.Add(period)
	b.apply(r, EvClientDelete, res, now)
	res.Record = clone(r)
	return res
}

// Tick ends what is due at now: active-but-terminating periods (status 6,
// then gone) and expired lifetimes.
func (b *Book) Tick(now time.Time) *Result {
	res := &Result{}
	var due []*Record
	for _, m := range b.byClient {
		for _, r := range m {
			if r.Status == dots.StatusClientWithdrawn && !now.Before(r.TerminateAt) || r.Lifetime >= 0 && !now.Before(r.Expires) {
				due = append(due, r)
			}
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if due[i].CUID != due[j].CUID {
			return due[i].CUID < due[j].CUID
		}
		return due[i].MID < due[j].MID
	})
	for _, r := range due {
		b.apply(r, EvEnd, res, now)
	}
	return res
}

// deactivatePreconfigured returns the client's active trigger-mitigation=false
// requests that rec overlaps to waiting on signal loss (RFC 9132 §4.4.1: the
// immediate request takes over; status 8 is reported at once, without the
// four status-7 notifications).
func (b *Book) deactivatePreconfigured(rec *Record, res *Result, now time.Time) {
	for _, o := range b.overlapping(rec) {
		if o.CUID != rec.CUID || o.Trigger {
			continue
		}
		b.apply(o, EvImmediateOverlap, res, now)
	}
}

// SessionLost activates the client's trigger-mitigation=false requests and
// withdraws its active requests they overlap (RFC 9132 §4.4.1, §4.7).
func (b *Book) SessionLost(cuid string, now time.Time) *Result {
	res := &Result{}
	recs := b.sorted(cuid)
	for _, r := range recs {
		if _, ok := b.apply(r, EvSignalLost, res, now); !ok {
			continue
		}
		for _, o := range recs {
			if o.Trigger && o.overlaps(r) {
				b.apply(o, EvPreconfiguredTakeover, res, now)
			}
		}
	}
	return res
}

// SetOutcome records what the mitigator reported for an active request.
func (b *Book) SetOutcome(k Key, status dots.Status, note string) *Result {
	res := &Result{}
	r, ok := b.byClient[k.CUID][k.MID]
	if !ok {
		return res
	}
	ev, ok := outcomeEvent(status)
	if !ok {
		return res
	}
	step, ok := Transition(r.Status, ev)
	if !ok || step.To == r.Status && r.Note == note {
		return res
	}
	res.touch(r)
	r.Note = note
	b.apply(r, ev, res, time.Time{})
	res.Record = clone(r)
	return res
}

// Peek returns what a refresh needs of an existing request (its targets as
// resolved, and when to resolve them again), without copying the record;
// ok is false for an unknown (or terminated) request.
func (b *Book) Peek(k Key) (p Peeked, ok bool) {
	r, ok := b.byClient[k.CUID][k.MID]
	if !ok || r.Status == dots.StatusTerminated {
		return Peeked{}, false
	}
	return Peeked{MID: r.MID, Prefixes: r.Prefixes, FromNames: r.FromNames, NamesExpire: r.NamesExpire}, true
}

// Peeked is what Peek returns. The slices are the book's: read them only.
type Peeked struct {
	MID         uint32
	Prefixes    []netip.Prefix
	FromNames   []netip.Prefix
	NamesExpire time.Time
}

// Get returns a copy of one request.
func (b *Book) Get(k Key) (*Record, bool) {
	r, ok := b.byClient[k.CUID][k.MID]
	if !ok {
		return nil, false
	}
	return clone(r), true
}

// List returns copies of a client's requests in mid order.
func (b *Book) List(cuid string) []*Record {
	recs := b.sorted(cuid)
	for i, r := range recs {
		recs[i] = clone(r)
	}
	return recs
}

// Active returns copies of every request that should be diverting.
func (b *Book) Active() []*Record {
	var out []*Record
	for _, cuid := range b.clients() {
		for _, r := range b.sorted(cuid) {
			if r.Active() {
				out = append(out, clone(r))
			}
		}
	}
	return out
}

// HasActive reports whether a client has an active mitigation (which selects
// the mitigating-config set of RFC 9132 §4.5).
func (b *Book) HasActive(cuid string) bool {
	for _, r := range b.byClient[cuid] {
		if r.Active() {
			return true
		}
	}
	return false
}

// Clients returns the cuids that hold requests, sorted.
func (b *Book) Clients() []string { return b.clients() }

func (b *Book) clients() []string {
	out := make([]string, 0, len(b.byClient))
	for c := range b.byClient {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

func (b *Book) sorted(cuid string) []*Record {
	m := b.byClient[cuid]
	out := make([]*Record, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MID < out[j].MID })
	return out
}

func clone(r *Record) *Record {
	c := *r
	return &c
}

// requestScope keeps the target attributes of a request (what a refresh must repeat).
func requestScope(r *dots.Request) dots.Scope {
	s := r.Scope
	return dots.Scope{TargetPrefix: s.TargetPrefix, TargetPortRange: s.TargetPortRange, TargetProtocol: s.TargetProtocol,
		TargetFQDN: s.TargetFQDN, TargetURI: s.TargetURI, AliasName: s.AliasName, TriggerMitigation: s.TriggerMitigation,
		Countermeasure: s.Countermeasure, ACLList: s.ACLList}
}

func uitoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
