package dns

import (
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// Sentinel errors, wrapped by *Error: test them with errors.Is.
var (
	// ErrNotOwned: the client domain does not own the name (Zone.Clients).
	ErrNotOwned = errors.New("not owned by the client domain")
	// ErrConflict: the name's records are not what the backend expected
	// (an operator changed them during the diversion); nothing was
	// overwritten.
	ErrConflict = errors.New("records changed by someone else: not overwritten")
	// ErrRefused: the server answered REFUSED, NOTAUTH or NOTZONE (the key
	// may not update the zone, or the server is not its primary).
	ErrRefused = errors.New("refused by the DNS server")
	// ErrTSIG: TSIG authentication failed (BADSIG, BADKEY, BADTIME or a
	// reply that does not verify): wrong key name or secret, or clock skew.
	ErrTSIG = errors.New("TSIG authentication failed")
	// ErrUnreachable: no usable answer after every retry (timeouts,
	// network errors, SERVFAIL).
	ErrUnreachable = errors.New("no usable answer from the primary")
	// ErrNoAddress: the name has no A or AAAA records to divert (it does
	// not exist, or is a CNAME).
	ErrNoAddress = errors.New("no A or AAAA records to divert")
)

// Error is a failed operation on one name. Its text names the name, the
// zone, the server and the DNS response code (and TSIG error), e.g.
// "dns: divert www.other.example. (zone other.example. at 127.0.0.1:10053):
// REFUSED: refused by the DNS server: the key dots-key. may not update …".
type Error struct {
	Op     string // "check", "read", "divert", "restore"
	Name   string // owner name, canonical ("www.svc.example.")
	Zone   string
	Server string // the primary, when one was asked
	Rcode  int    // response code of the server's answer; -1 if there was none
	TSIG   int    // TSIG error of the answer (BADSIG 16, BADKEY 17, BADTIME 18); 0 if none
	Err    error
}

// newError builds an Error for name in z from the answer r (may be nil).
func newError(op, name string, z Zone, r *dns.Msg, err error) *Error {
	e := &Error{Op: op, Name: name, Zone: z.Name, Server: z.Primary, Rcode: -1, Err: err}
	if r != nil {
		e.Rcode = r.Rcode
		if t := r.IsTsig(); t != nil {
			e.TSIG = int(t.Error)
		}
	}
	return e
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dns: %s %s (zone %s", e.Op, e.Name, e.Zone)
	if e.Server != "" {
		b.WriteString(" at " + e.Server)
	}
	b.WriteString(")")
	if e.Server != "" && e.Rcode >= 0 {
		b.WriteString(": " + RcodeString(e.Rcode))
		if e.TSIG != 0 {
			b.WriteString("/" + RcodeString(e.TSIG))
		}
	}
	return b.String() + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// RcodeString names a DNS or TSIG response code ("REFUSED", "BADSIG").
func RcodeString(rc int) string {
	if rc >= dns.RcodeBadSig && rc <= dns.RcodeBadTime {
		return [...]string{"BADSIG", "BADKEY", "BADTIME"}[rc-dns.RcodeBadSig]
	}
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}

// hint explains a refusal for an operator.
func hint(rc int, keyName string) error {
	switch rc {
	case dns.RcodeRefused:
		return fmt.Errorf("%w: the key %s may not update this zone (check update-policy / acl), or updates are disabled", ErrRefused, keyName)
	case dns.RcodeNotAuth:
		return fmt.Errorf("%w: the server is not authoritative for the zone or does not let the key %s update it (check the acl)", ErrRefused, keyName)
	case dns.RcodeNotZone:
		return fmt.Errorf("%w: the name is not in the zone on this server", ErrRefused)
	case dns.RcodeBadSig:
		return fmt.Errorf("%w: the server rejected the signature: wrong secret for key %s", ErrTSIG, keyName)
	case dns.RcodeBadKey:
		// BIND: unknown key. Knot also answers BADKEY when the zone's acl
		// does not list the key.
		return fmt.Errorf("%w (%w): the server does not accept the key %s for this zone (unknown key or algorithm, or not in the zone's acl)", ErrRefused, ErrTSIG, keyName)
	case dns.RcodeBadTime:
		return fmt.Errorf("%w: the clocks of this host and the server differ by more than 300 s", ErrTSIG)
	case dns.RcodeServerFailure:
		return fmt.Errorf("%w: the server failed to process the request (see its log)", ErrUnreachable)
	}
	return fmt.Errorf("%w: unexpected answer", ErrRefused)
}
