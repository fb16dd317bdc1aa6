package dots

import (
	"crypto/sha256"
	"encoding/base64"
	"net/netip"
	"strings"
)

// CUIDFromSPKI derives the RFC 9132 §4.4.1 client identifier: the first 16
// bytes of SHA-256 over the DER SubjectPublicKeyInfo, base64url without
// padding (22 characters).
func CUIDFromSPKI(spki []byte) string {
	h := sha256.Sum256(spki)
	return base64.RawURLEncoding.EncodeToString(h[:16])
}

// Request is a validated mitigation request scope.
type Request struct {
	Scope    Scope          // the scope as sent
	Prefixes []netip.Prefix // target-prefix, parsed and masked
	Lifetime int64          // seconds, or -1 for indefinite
	Trigger  bool           // trigger-mitigation (default true)
}

// ParseMitigationRequest validates the body of a PUT /mitigate request
// against RFC 9132 §4.4.1: one scope, at least one target, a lifetime that
// is not 0, no server-only or path attributes, well-formed targets, and
// every list and string within AttributeLimits. Every failure is a 4.00
// *Error naming the attribute.
func ParseMitigationRequest(m *Message) (*Request, error) {
	if m == nil || m.MitigationScope == nil || m.SignalConfig != nil || m.Heartbeat != nil || m.RedirectedSignal != nil {
		return nil, Errorf(BadRequest, "body must hold ietf-dots-signal-channel:mitigation-scope and nothing else")
	}
	if n := len(m.MitigationScope.Scope); n != 1 {
		return nil, Errorf(BadRequest, "mitigation-scope must hold exactly one scope, got %d", n)
	}
	s := m.MitigationScope.Scope[0]
	if err := checkBounds(&s); err != nil {
		return nil, err
	}
	switch {
	case s.MID != nil:
		return nil, Errorf(BadRequest, "mid belongs in the Uri-Path, not in the body")
	case s.MitigationStart != nil || s.Status != nil || s.ConflictInformation != nil ||
		s.BytesDropped != nil || s.BpsDropped != nil || s.PktsDropped != nil || s.PpsDropped != nil:
		return nil, Errorf(BadRequest, "status attributes (status, mitigation-start, conflict-information, counters) are server-to-client only")
	case s.Lifetime == nil && s.AttackStatus == nil:
		return nil, Errorf(BadRequest, "lifetime is mandatory")
	case s.Lifetime != nil && *s.Lifetime == 0:
		return nil, Errorf(BadRequest, "lifetime 0 is invalid")
	case s.Lifetime != nil && *s.Lifetime < -1:
		return nil, Errorf(BadRequest, "lifetime %d is invalid: use seconds or -1 for indefinite", *s.Lifetime)
	case len(s.TargetPrefix)+len(s.TargetFQDN)+len(s.TargetURI)+len(s.AliasName) == 0:
		return nil, Errorf(BadRequest, "at least one of target-prefix, target-fqdn, target-uri or alias-name is required")
	}
	r := &Request{Scope: s, Trigger: s.TriggerMitigation == nil || *s.TriggerMitigation}
	if s.Lifetime != nil {
		r.Lifetime = *s.Lifetime
	}
	for _, p := range s.TargetPrefix {
		pfx, err := ParseTargetPrefix(p)
		if err != nil {
			return nil, err
		}
		r.Prefixes = append(r.Prefixes, pfx)
	}
	for _, pr := range s.TargetPortRange {
		if pr.UpperPort != nil && *pr.UpperPort < pr.LowerPort {
			return nil, Errorf(BadRequest, "target-port-range: upper-port %d is below lower-port %d", *pr.UpperPort, pr.LowerPort)
		}
	}
	for _, p := range s.TargetProtocol {
		if p > 255 {
			return nil, Errorf(BadRequest, "target-protocol %d is not a uint8", p)
		}
	}
	for _, f := range s.TargetFQDN {
		if !ValidFQDN(f) {
			return nil, Errorf(BadRequest, "target-fqdn %q is not a valid domain name", f)
		}
	}
	for _, u := range s.TargetURI {
		if _, err := ParseTargetURI(u); err != nil {
			return nil, err
		}
	}
	for _, a := range s.AliasName {
		if a == "" {
			return nil, Errorf(BadRequest, "alias-name must not be empty")
		}
	}
	return r, nil
}

// ParseTargetPrefix parses an inet:ip-prefix and refuses the targets RFC 9132
// §4.4.1.1 excludes: loopback, multicast, broadcast (and unspecified).
func ParseTargetPrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, Errorf(BadRequest, "target-prefix %q is not an IP prefix: %v", s, err)
	}
	p = p.Masked()
	a := p.Addr()
	switch {
	case a.Is4In6():
		return netip.Prefix{}, Errorf(BadRequest, "target-prefix %q: use the IPv4 form, not IPv4-mapped IPv6", s)
	case a.IsLoopback() || overlaps(p, "127.0.0.0/8") || overlaps(p, "::1/128"):
		return netip.Prefix{}, Errorf(BadRequest, "target-prefix %q is a loopback address", s)
	case a.IsMulticast() || overlaps(p, "224.0.0.0/4") || overlaps(p, "ff00::/8"):
		return netip.Prefix{}, Errorf(BadRequest, "target-prefix %q is a multicast address", s)
	case overlaps(p, "255.255.255.255/32"):
		return netip.Prefix{}, Errorf(BadRequest, "target-prefix %q includes the broadcast address", s)
	case a.IsUnspecified() && p.Bits() == p.Addr().BitLen():
		return netip.Prefix{}, Errorf(BadRequest, "target-prefix %q is the unspecified address", s)
	}
	return p, nil
}

func overlaps(p netip.Prefix, special string) bool {
	sp := netip.MustParsePrefix(special)
	return p.Addr().BitLen() == sp.Addr().BitLen() && p.Overlaps(sp)
}

// ValidFQDN checks RFC 1035 / RFC 1123 host name syntax.
func ValidFQDN(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
