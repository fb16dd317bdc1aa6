package data

import (
	"fmt"
	"slices"
	"strings"
)

// ACLType is the RFC 8519 acl-type identity of an ACL. The data channel
// carries IPv4 and IPv6 matches only, so only these two are accepted.
type ACLType string

// ACL types, in the short form of the RFC 8783 examples; the module-
// qualified form ("ietf-access-control-list:ipv4-acl-type") is accepted.
const (
	IPv4ACLType ACLType = "ipv4-acl-type"
	IPv6ACLType ACLType = "ipv6-acl-type"
)

const aclModule = "ietf-access-control-list:"

func parseACLType(s string) (ACLType, error) {
	switch t := ACLType(strings.TrimPrefix(s, aclModule)); t {
	case IPv4ACLType, IPv6ACLType:
		return t, nil
	}
	return "", fmt.Errorf("acl type %q is not ipv4-acl-type or ipv6-acl-type", s)
}

// ActivationType says when an ACL is enforced (RFC 8783 §4.3).
type ActivationType string

// Activation types.
const (
	ActivateWhenMitigating ActivationType = "activate-when-mitigating"
	Immediate              ActivationType = "immediate"
	Deactivate             ActivationType = "deactivate"
)

func parseActivation(s string) (ActivationType, error) {
	switch a := ActivationType(s); a {
	case ActivateWhenMitigating, Immediate, Deactivate:
		return a, nil
	}
	return "", fmt.Errorf("activation-type %q is not activate-when-mitigating, immediate or deactivate", s)
}

// Forwarding is the forwarding action identity of an ACE.
type Forwarding string

// Forwarding actions. RFC 8783 §4.3: 'reject' is not supported by the
// data channel (it would make the server send ICMP toward attack sources).
const (
	Accept Forwarding = "accept"
	Drop   Forwarding = "drop"
)

func parseForwarding(s string) (Forwarding, error) {
	switch f := Forwarding(strings.TrimPrefix(s, aclModule)); f {
	case Accept, Drop:
		return f, nil
	case "reject":
		return "", fmt.Errorf("forwarding 'reject' is not supported by the DOTS data channel (RFC 8783 §4.3)")
	}
	return "", fmt.Errorf("forwarding %q is not accept or drop", s)
}

// Operator is RFC 8519's port operator.
type Operator string

// Port operators.
const (
	LTE Operator = "lte"
	GTE Operator = "gte"
	EQ  Operator = "eq"
	NEQ Operator = "neq"
)

func parseOperator(s string) (Operator, error) {
	switch o := Operator(s); o {
	case LTE, GTE, EQ, NEQ:
		return o, nil
	}
	return "", fmt.Errorf("operator %q is not lte, gte, eq or neq", s)
}

// Bits is a YANG bits value: space-separated bit names (RFC 7951 §6.5).
// Which names are valid depends on the leaf; the decoder checks them.
type Bits string

// Has reports whether name is set.
func (b Bits) Has(name string) bool { return slices.Contains(strings.Fields(string(b)), name) }

// Names returns the set bit names.
func (b Bits) Names() []string { return strings.Fields(string(b)) }

// Bit names of the leaves of type bits.
var (
	// OperatorBits are the DOTS operator bits (RFC 8783 §4.3).
	OperatorBits = []string{"not", "match", "any"}
	// FragmentBits are the fragment-type bits; df exists only in IPv4.
	FragmentBits = []string{"df", "isf", "ff", "lf"}
	// TCPFlagBits are RFC 8519's tcp flags.
	TCPFlagBits = []string{"cwr", "ece", "urg", "ack", "psh", "rst", "syn", "fin"}
	// IPv4FlagBits are RFC 8519's ipv4 flags.
	IPv4FlagBits = []string{"reserved", "fragment", "more"}
)

func checkBits(b Bits, valid []string) error {
	seen := map[string]bool{}
	for _, n := range b.Names() {
		if !slices.Contains(valid, n) {
			return fmt.Errorf("bit %q is not one of %s", n, strings.Join(valid, ", "))
		}
		if seen[n] {
			return fmt.Errorf("bit %q is given twice", n)
		}
		seen[n] = true
	}
	return nil
}
