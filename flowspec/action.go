package flowspec

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// ActionKind is a traffic-filtering action (RFC 8955 §7).
type ActionKind uint8

// Action kinds.
const (
	Discard      ActionKind = iota + 1 // traffic-rate-bytes 0
	RateLimit                          // traffic-rate-bytes, 0x8006
	RedirectVRF                        // rt-redirect, 0x8008 / 0x8108 / 0x8208
	RedirectIPv4                       // redirect to IPv4 next hop, 0x010c
	MarkDSCP                           // traffic-marking, 0x8009
)

var kindNames = [...]string{
	Discard:      "discard",
	RateLimit:    "rate-limit",
	RedirectVRF:  "redirect-vrf",
	RedirectIPv4: "redirect-ip",
	MarkDSCP:     "mark",
}

// String returns the keyword of k used by ParseAction.
func (k ActionKind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("action(%d)", uint8(k))
}

// Action is one traffic-filtering action, carried as an extended community.
type Action struct {
	Kind        ActionKind
	RateBytes   float32    // RateLimit: bytes per second, > 0 (traffic-rate-bytes 0x8006); Discard is rate 0
	RouteTarget string     // RedirectVRF: "ASN:NN" (2-octet AS -> 0x8008; 4-octet AS -> 0x8208) or "a.b.c.d:NN" (0x8108)
	RedirectIP  netip.Addr // RedirectIPv4: IPv4-address-specific extended community, transitive type 0x01 sub-type 0x0c, local admin 0
	DSCP        uint8      // MarkDSCP: traffic-marking 0x8009, 6 bits
	AS          uint16     // Discard, RateLimit: informational AS in traffic-rate (0 if unset)
}

const actionSyntax = `want "discard", "rate-limit BYTES_PER_S", "redirect-vrf RT", "redirect-ip A.B.C.D" or "mark DSCP"`

// ParseAction parses the text form of an action:
//
//	discard [as ASN]
//	rate-limit BYTES_PER_S [as ASN]
//	redirect-vrf ASN:NN | A.B.C.D:NN   (stored in canonical form)
//	redirect-ip A.B.C.D
//	mark DSCP
//
// Keywords are case-insensitive. The optional "as ASN" sets the
// informational AS of traffic-rate; String writes it when it is not 0, so
// ParseAction(a.String()) gives a back.
func ParseAction(s string) (Action, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return Action{}, fmt.Errorf("flowspec: empty action (%s)", actionSyntax)
	}
	kw := strings.ToLower(f[0])
	var a Action
	switch kw {
	case "discard":
		a.Kind = Discard
		f = f[1:]
	case "rate-limit", "redirect-vrf", "redirect-ip", "mark":
		if len(f) < 2 {
			return Action{}, fmt.Errorf("flowspec: %q needs an argument (%s)", kw, actionSyntax)
		}
		arg := f[1]
		f = f[2:]
		switch kw {
		case "rate-limit":
			r, err := strconv.ParseFloat(arg, 32)
			if err != nil {
				return Action{}, fmt.Errorf("flowspec: rate-limit %q: want a number of bytes per second below 3.4e38", arg)
			}
			a = Action{Kind: RateLimit, RateBytes: float32(r)}
		case "redirect-vrf":
			rt, err := parseRT(arg)
			if err != nil {
				return Action{}, err
			}
			a = Action{Kind: RedirectVRF, RouteTarget: rt.String()}
		case "redirect-ip":
			ip, err := netip.ParseAddr(arg)
			if err != nil {
				return Action{}, fmt.Errorf("flowspec: redirect-ip %q: not an IPv4 address", arg)
			}
			a = Action{Kind: RedirectIPv4, RedirectIP: ip}
		case "mark":
			d, err := strconv.ParseUint(arg, 10, 8)
			if err != nil {
				return Action{}, fmt.Errorf("flowspec: mark %q: DSCP must be a number from 0 to 63", arg)
			}
			a = Action{Kind: MarkDSCP, DSCP: uint8(d)}
		}
	default:
		return Action{}, fmt.Errorf("flowspec: unknown action %q (%s)", f[0], actionSyntax)
	}
	if len(f) == 2 && strings.EqualFold(f[0], "as") && (a.Kind == Discard || a.Kind == RateLimit) {
		as, err := strconv.ParseUint(f[1], 10, 16)
		if err != nil {
			return Action{}, fmt.Errorf("flowspec: %s: as %q: want a 2-octet AS number", kw, f[1])
		}
		a.AS = uint16(as)
		f = nil
	}
	if len(f) > 0 {
		return Action{}, fmt.Errorf("flowspec: %s: unexpected %q (%s)", kw, strings.Join(f, " "), actionSyntax)
	}
	if _, err := a.ExtendedCommunity(); err != nil {
		return Action{}, err
	}
	return a, nil
}

// ExtendedCommunity returns the 8 octets of the extended community that
// carries a:
//
//	Discard       80 06 AS AS 00 00 00 00        traffic-rate-bytes 0
//	RateLimit     80 06 AS AS float32 (BE)       traffic-rate-bytes
//	RedirectVRF   80 08 AS AS NN NN NN NN        rt-redirect, 2-octet AS
//	              81 08 IP IP IP IP NN NN        rt-redirect, IPv4
//	              82 08 AS AS AS AS NN NN        rt-redirect, 4-octet AS
//	RedirectIPv4  01 0c IP IP IP IP 00 00        redirect to IPv4 (draft-ietf-idr-flowspec-redirect-ip)
//	MarkDSCP      80 09 00 00 00 00 00 DSCP      traffic-marking
func (a Action) ExtendedCommunity() ([8]byte, error) {
	var c [8]byte
	switch a.Kind {
	case Discard, RateLimit:
		c[0], c[1] = 0x80, 0x06
		binary.BigEndian.PutUint16(c[2:], a.AS)
		if a.Kind == RateLimit {
			r := float64(a.RateBytes)
			if math.IsNaN(r) || math.IsInf(r, 0) || r <= 0 {
				return c, fmt.Errorf("flowspec: rate-limit %v: want a finite rate above 0 bytes per second (0 is discard)", a.RateBytes)
			}
			binary.BigEndian.PutUint32(c[4:], math.Float32bits(a.RateBytes))
		}
	case RedirectVRF:
		rt, err := parseRT(a.RouteTarget)
		if err != nil {
			return c, err
		}
		return rt.community(), nil
	case RedirectIPv4:
		if !a.RedirectIP.Is4() {
			return c, fmt.Errorf("flowspec: redirect-ip %q: want an IPv4 address", a.RedirectIP)
		}
		c[0], c[1] = 0x01, 0x0c
		ip := a.RedirectIP.As4()
		copy(c[2:6], ip[:])
	case MarkDSCP:
		if a.DSCP > 0x3f {
			return c, fmt.Errorf("flowspec: mark %d: DSCP must be from 0 to 63", a.DSCP)
		}
		c[0], c[1], c[7] = 0x80, 0x09, a.DSCP
	default:
		return c, fmt.Errorf("flowspec: unknown action kind %d", a.Kind)
	}
	return c, nil
}

// String returns the text form of a read by ParseAction, with a canonical
// route target.
func (a Action) String() string {
	as := ""
	if a.AS != 0 {
		as = " as " + strconv.FormatUint(uint64(a.AS), 10)
	}
	switch a.Kind {
	case Discard:
		return "discard" + as
	case RateLimit:
		return "rate-limit " + strconv.FormatFloat(float64(a.RateBytes), 'f', -1, 32) + as
	case RedirectVRF:
		if rt, err := parseRT(a.RouteTarget); err == nil {
			return "redirect-vrf " + rt.String()
		}
		return "redirect-vrf " + a.RouteTarget
	case RedirectIPv4:
		return "redirect-ip " + a.RedirectIP.String()
	case MarkDSCP:
		return "mark " + strconv.FormatUint(uint64(a.DSCP), 10)
	}
	return a.Kind.String()
}

// routeTarget is a parsed rt-redirect target.
type routeTarget struct {
	ip     netip.Addr // IPv4 form when valid
	as     uint32
	number uint32 // local administrator
}

// parseRT parses "ASN:NN" or "a.b.c.d:NN". An AS above 65535 takes the
// 4-octet-AS form, whose local administrator is 2 octets.
func parseRT(s string) (routeTarget, error) {
	bad := func(why string) (routeTarget, error) {
		return routeTarget{}, fmt.Errorf("flowspec: redirect-vrf %q: %s (want ASN:NN or A.B.C.D:NN)", s, why)
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return bad("no ':'")
	}
	admin, nn := s[:i], s[i+1:]
	var rt routeTarget
	maxNN := uint64(math.MaxUint16)
	if strings.Contains(admin, ".") {
		ip, err := netip.ParseAddr(admin)
		if err != nil || !ip.Is4() {
			return bad("not an IPv4 address before ':'")
		}
		rt.ip = ip
	} else {
		as, err := strconv.ParseUint(admin, 10, 32)
		if err != nil {
			return bad("not an AS number before ':'")
		}
		rt.as = uint32(as)
		if as <= math.MaxUint16 {
			maxNN = math.MaxUint32
		}
	}
	n, err := strconv.ParseUint(nn, 10, 32)
	if err != nil || n > maxNN {
		return bad(fmt.Sprintf("the number after ':' must be from 0 to %d", maxNN))
	}
	rt.number = uint32(n)
	return rt, nil
}

func (rt routeTarget) community() [8]byte {
	var c [8]byte
	c[1] = 0x08
	switch {
	case rt.ip.IsValid():
		c[0] = 0x81
		ip := rt.ip.As4()
		copy(c[2:6], ip[:])
		binary.BigEndian.PutUint16(c[6:], uint16(rt.number))
	case rt.as > math.MaxUint16:
		c[0] = 0x82
		binary.BigEndian.PutUint32(c[2:], rt.as)
		binary.BigEndian.PutUint16(c[6:], uint16(rt.number))
	default:
		c[0] = 0x80
		binary.BigEndian.PutUint16(c[2:], uint16(rt.as))
		binary.BigEndian.PutUint32(c[4:], rt.number)
	}
	return c
}

func (rt routeTarget) String() string {
	if rt.ip.IsValid() {
		return fmt.Sprintf("%s:%d", rt.ip, rt.number)
	}
	return fmt.Sprintf("%d:%d", rt.as, rt.number)
}
