package dots

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Status is the mitigation status of RFC 9132 Table 7.
type Status uint32

// Mitigation status values (RFC 9132 §4.4.2, Table 7).
const (
	StatusInProgress         Status = 1
	StatusMitigated          Status = 2
	StatusAttackStopped      Status = 3
	StatusExceededCapability Status = 4
	StatusClientWithdrawn    Status = 5
	StatusTerminated         Status = 6
	StatusServerWithdrawn    Status = 7
	StatusSignalLoss         Status = 8
)

var statusLabels = []string{"", "attack-mitigation-in-progress", "attack-successfully-mitigated",
	"attack-stopped", "attack-exceeded-capability", "dots-client-withdrawn-mitigation",
	"attack-mitigation-terminated", "attack-mitigation-withdrawn", "attack-mitigation-signal-loss"}

// ConflictStatus is RFC 9132 Table 8.
type ConflictStatus uint32

// Conflict status values.
const (
	ConflictInactiveOtherActive ConflictStatus = 1
	ConflictActive              ConflictStatus = 2
	ConflictAllInactive         ConflictStatus = 3
)

var conflictStatusLabels = []string{"", "request-inactive-other-active", "request-active", "all-requests-inactive"}

// ConflictCause is RFC 9132 Table 9 (with RFC 9066 / RFC 9244 additions).
type ConflictCause uint32

// Conflict cause values.
const (
	CauseOverlappingTargets ConflictCause = 1
	CauseConflictAcceptList ConflictCause = 2
	CauseCUIDCollision      ConflictCause = 3
	CauseLegitimateTraffic  ConflictCause = 4
	CauseOverlappingPipes   ConflictCause = 5
)

var conflictCauseLabels = []string{"", "overlapping-targets", "conflict-with-acceptlist", "cuid-collision",
	"request-rejected-legitimate-traffic", "overlapping-pipes"}

// AttackStatus is RFC 9132 Table 10, sent by a client in an efficacy update.
type AttackStatus uint32

// Attack status values.
const (
	AttackUnderAttack AttackStatus = 1
	AttackMitigated   AttackStatus = 2
)

var attackStatusLabels = []string{"", "under-attack", "attack-successfully-mitigated"}

// ActivationType is the RFC 9133 / RFC 8783 ACL activation type.
type ActivationType uint32

var activationLabels = []string{"", "activate-when-mitigating", "immediate", "deactivate"}

func label(labels []string, v uint32) string {
	if int(v) < len(labels) && labels[v] != "" {
		return labels[v]
	}
	return strconv.FormatUint(uint64(v), 10)
}

func parseLabel(labels []string, data []byte, what string) (uint32, error) {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		var n uint32
		if err2 := json.Unmarshal(data, &n); err2 != nil {
			return 0, fmt.Errorf("%s: want a label or a number: %w", what, err)
		}
		return n, nil
	}
	for i, l := range labels {
		if l != "" && l == s {
			return uint32(i), nil
		}
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	return 0, fmt.Errorf("%s: unknown value %q", what, s)
}

func (s Status) String() string         { return label(statusLabels, uint32(s)) }
func (s ConflictStatus) String() string { return label(conflictStatusLabels, uint32(s)) }
func (s ConflictCause) String() string  { return label(conflictCauseLabels, uint32(s)) }
func (s AttackStatus) String() string   { return label(attackStatusLabels, uint32(s)) }
func (s ActivationType) String() string { return label(activationLabels, uint32(s)) }

// MarshalJSON renders the RFC 7951 enumeration label.
func (s Status) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalJSON renders the RFC 7951 enumeration label.
func (s ConflictStatus) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalJSON renders the RFC 7951 enumeration label.
func (s ConflictCause) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalJSON renders the RFC 7951 enumeration label.
func (s AttackStatus) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalJSON renders the RFC 7951 enumeration label.
func (s ActivationType) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON accepts the label or the number.
func (s *Status) UnmarshalJSON(b []byte) error {
	v, err := parseLabel(statusLabels, b, "status")
	*s = Status(v)
	return err
}

// UnmarshalJSON accepts the label or the number.
func (s *ConflictStatus) UnmarshalJSON(b []byte) error {
	v, err := parseLabel(conflictStatusLabels, b, "conflict-status")
	*s = ConflictStatus(v)
	return err
}

// UnmarshalJSON accepts the label or the number.
func (s *ConflictCause) UnmarshalJSON(b []byte) error {
	v, err := parseLabel(conflictCauseLabels, b, "conflict-cause")
	*s = ConflictCause(v)
	return err
}

// UnmarshalJSON accepts the label or the number.
func (s *AttackStatus) UnmarshalJSON(b []byte) error {
	v, err := parseLabel(attackStatusLabels, b, "attack-status")
	*s = AttackStatus(v)
	return err
}

// UnmarshalJSON accepts the label or the number.
func (s *ActivationType) UnmarshalJSON(b []byte) error {
	v, err := parseLabel(activationLabels, b, "activation-type")
	*s = ActivationType(v)
	return err
}

// ParseAttackStatus parses a label such as "under-attack".
func ParseAttackStatus(s string) (AttackStatus, error) {
	v, err := parseLabel(attackStatusLabels, []byte(strconv.Quote(s)), "attack-status")
	if err == nil && (v < 1 || v > 2) {
		err = fmt.Errorf("attack-status: %q is not under-attack or attack-successfully-mitigated", s)
	}
	return AttackStatus(v), err
}
