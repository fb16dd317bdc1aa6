package mitigation

import (
	"fmt"

	"github.com/levee-dots/levee/dots"
)

// Event is something that happens to a mitigation request. Every status
// change of a request is one event looked up in the transition table.
type Event uint8

// The events of a mitigation request's life (RFC 9132 §4.4).
const (
	// EvCreate: a new request with trigger-mitigation true (§4.4.1).
	EvCreate Event = iota + 1
	// EvPreconfigure: a new request with trigger-mitigation false (§4.4.1).
	EvPreconfigure
	// EvReRequest: a PUT of a request within its active-but-terminating period (§4.4.4).
	EvReRequest
	// EvSignalLost: the signal channel was lost; a preconfigured request starts (§4.7).
	EvSignalLost
	// EvClientDelete: DELETE /mitigate (§4.4.4).
	EvClientDelete
	// EvEnd: the lifetime ran out or the active-but-terminating period ended.
	EvEnd
	// EvSupersede: a higher mid of the same client covers this request (§4.4.1).
	EvSupersede
	// EvImmediateOverlap: the client's immediate request takes over from an
	// active preconfigured one, which waits for signal loss again (§4.4.1).
	EvImmediateOverlap
	// EvPreconfiguredTakeover: a preconfigured request activated on signal
	// loss takes over this overlapping immediate one (status 7, §4.7).
	EvPreconfiguredTakeover
	// EvDiverted, EvPending, EvExceeded, EvStopped: what the mitigator
	// reported (diverted; pending or failed; over capability; the attack
	// traffic stopped).
	EvDiverted
	EvPending
	EvExceeded
	EvStopped
	numEvents = int(EvStopped)
)

var eventNames = [...]string{"", "create", "preconfigure", "re-request", "signal-lost", "client-delete", "end",
	"supersede", "immediate-overlap", "preconfigured-takeover", "diverted", "pending", "exceeded", "stopped"}

func (e Event) String() string {
	if int(e) < len(eventNames) {
		return eventNames[e]
	}
	return fmt.Sprintf("event(%d)", e)
}

// Effect is what a transition asks of the mitigator.
type Effect uint8

// Effects of a transition.
const (
	NoEffect      Effect = iota
	Divert               // start (or re-apply) the diversion
	StopDiverting        // withdraw the diversion
)

// Absent is the status of a request that does not exist (yet, or any more).
const Absent dots.Status = 0

// Step is one row of the transition table: the status after the event,
// the effect on the mitigator, and whether the request is removed.
type Step struct {
	To     dots.Status
	Effect Effect
	Remove bool // the request is gone (after a final status 6 notification for EvEnd)
}

type transitionKey struct {
	from dots.Status
	ev   Event
}

// activeStatuses are the statuses in which traffic is being diverted by
// the client's request (the terminating status 5 is active too).
var activeStatuses = []dots.Status{dots.StatusInProgress, dots.StatusMitigated, dots.StatusAttackStopped, dots.StatusExceededCapability}

// transitions is the whole life of a request: a pair absent from the
// table is an event that does not apply in that status and changes nothing.
var transitions = func() map[transitionKey]Step {
	t := map[transitionKey]Step{
		{Absent, EvCreate}:                           {To: dots.StatusInProgress, Effect: Divert},
		{Absent, EvPreconfigure}:                     {To: dots.StatusSignalLoss},
		{dots.StatusClientWithdrawn, EvReRequest}:    {To: dots.StatusInProgress, Effect: Divert},
		{dots.StatusSignalLoss, EvSignalLost}:        {To: dots.StatusInProgress, Effect: Divert},
		{dots.StatusSignalLoss, EvClientDelete}:      {To: Absent, Remove: true},
		{dots.StatusSignalLoss, EvEnd}:               {To: dots.StatusTerminated, Remove: true},
		{dots.StatusSignalLoss, EvSupersede}:         {To: Absent, Remove: true},
		{dots.StatusServerWithdrawn, EvClientDelete}: {To: Absent, Remove: true},
		{dots.StatusServerWithdrawn, EvEnd}:          {To: dots.StatusTerminated, Remove: true},
		{dots.StatusServerWithdrawn, EvSupersede}:    {To: Absent, Remove: true},
		{dots.StatusClientWithdrawn, EvEnd}:          {To: dots.StatusTerminated, Effect: StopDiverting, Remove: true},
	}
	for _, s := range activeStatuses {
		t[transitionKey{s, EvClientDelete}] = Step{To: dots.StatusClientWithdrawn}
		t[transitionKey{s, EvEnd}] = Step{To: dots.StatusTerminated, Effect: StopDiverting, Remove: true}
		t[transitionKey{s, EvSupersede}] = Step{To: Absent, Effect: StopDiverting, Remove: true}
		t[transitionKey{s, EvImmediateOverlap}] = Step{To: dots.StatusSignalLoss, Effect: StopDiverting}
		t[transitionKey{s, EvPreconfiguredTakeover}] = Step{To: dots.StatusServerWithdrawn, Effect: StopDiverting}
		t[transitionKey{s, EvDiverted}] = Step{To: dots.StatusMitigated}
		t[transitionKey{s, EvPending}] = Step{To: dots.StatusInProgress}
		t[transitionKey{s, EvExceeded}] = Step{To: dots.StatusExceededCapability}
		t[transitionKey{s, EvStopped}] = Step{To: dots.StatusAttackStopped}
	}
	return t
}()

// Transition looks up what event ev does to a request in status from. ok
// is false when the event does not apply there (nothing changes).
func Transition(from dots.Status, ev Event) (step Step, ok bool) {
	step, ok = transitions[transitionKey{from, ev}]
	return step, ok
}

// outcomeEvent maps a mitigator's reported status to its event.
func outcomeEvent(s dots.Status) (Event, bool) {
	switch s {
	case dots.StatusMitigated:
		return EvDiverted, true
	case dots.StatusInProgress:
		return EvPending, true
	case dots.StatusExceededCapability:
		return EvExceeded, true
	case dots.StatusAttackStopped:
		return EvStopped, true
	}
	return 0, false
}
