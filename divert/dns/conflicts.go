package dns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/store"
)

// BucketConflicts holds the restore conflicts: key "name/TYPE"
// ("www.svc.example./A") → a Conflict. A conflict stays until an operator
// clears it (ClearConflict), across restarts.
const BucketConflicts = "dns-conflicts"

// Conflict is one RRset of a diverted name that an operator changed during
// the diversion: at restore time the name did not hold what the backend
// had written, so the operator's records were kept and the original was
// not put back. The other type of the same name is restored as usual.
type Conflict struct {
	Name     string    `json:"name"`     // owner name, canonical ("www.svc.example.")
	Type     string    `json:"type"`     // "A" or "AAAA"
	Zone     string    `json:"zone"`     // the zone holding the name
	Diverted []string  `json:"diverted"` // what the backend wrote (scrubbing addresses)
	Found    []string  `json:"found"`    // what the name held at restore time (kept)
	Original []string  `json:"original"` // what the backend would have restored
	Since    time.Time `json:"since"`    // when the conflict was found
	CUID     string    `json:"cuid"`     // the last diversion holding the name
	MID      uint32    `json:"mid"`
}

// String is one line for logs and the admin API:
// "www.svc.example. A: found 198.51.100.7, diverted 192.0.2.80, original 203.0.113.10".
func (c Conflict) String() string {
	return fmt.Sprintf("%s %s: found %s, diverted %s, original %s", c.Name, c.Type,
		orNone(c.Found), orNone(c.Diverted), orNone(c.Original))
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no record"
	}
	return strings.Join(s, ", ")
}

func conflictKey(name, rrtype string) string { return name + "/" + rrtype }

// Conflicts returns every restore conflict not yet cleared, sorted by name
// then type.
func (b *Backend) Conflicts() ([]Conflict, error) {
	var out []Conflict
	err := b.st.ForEach(BucketConflicts, func(key string, value []byte) error {
		var c Conflict
		if err := json.Unmarshal(value, &c); err != nil {
			return fmt.Errorf("dns: corrupt %s/%s in the store: %w", BucketConflicts, key, err)
		}
		out = append(out, c)
		return nil
	})
	slices.SortFunc(out, func(x, y Conflict) int {
		if c := strings.Compare(x.Name, y.Name); c != 0 {
			return c
		}
		return strings.Compare(x.Type, y.Type)
	})
	return out, err
}

// ClearConflict forgets the conflict of name (any case, with or without
// the final dot) and rrtype ("A" or "AAAA"; "" clears both types). The
// records in DNS are not touched: the operator has settled them. A name
// or type with no recorded conflict is an error that says so.
func (b *Backend) ClearConflict(name, rrtype string) error {
	n := canonical(name)
	if n == "" || !validName(n) {
		return fmt.Errorf("dns: clear conflict: %q is not a domain name", name)
	}
	var types []string
	switch t := strings.ToUpper(strings.TrimSpace(rrtype)); t {
	case "":
		types = []string{"A", "AAAA"}
	case "A", "AAAA":
		types = []string{t}
	default:
		return fmt.Errorf("dns: clear conflict: type %q: want A, AAAA or empty (both)", rrtype)
	}
	// Not serialized with the DNS operations: an admin request does not
	// wait for a slow primary. A restore finding a conflict again at the
	// same time records it again, which is right.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ops []store.Op
	for _, t := range types {
		_, ok, err := b.st.Get(BucketConflicts, conflictKey(n, t))
		if err != nil {
			return fmt.Errorf("dns: clear conflict %s %s: %w", n, t, err)
		}
		if ok {
			ops = append(ops, store.Op{Bucket: BucketConflicts, Key: conflictKey(n, t), Delete: true})
		}
	}
	if len(ops) == 0 {
		what := n + " " + strings.Join(types, "/")
		return fmt.Errorf("dns: clear conflict: no conflict recorded for %s (see Conflicts for the list)", what)
	}
	if err := b.st.Apply(ctx, ops...); err != nil {
		return fmt.Errorf("dns: clear conflict %s: %w", n, err)
	}
	return nil
}

// restore puts rec's original records back, type by type: a type that
// still holds what the backend wrote is restored (a swap guarded by that
// RRset), a type already back to the original is left alone, and a type
// holding anything else was changed by an operator: it is kept, and
// returned as a Conflict. err is set only when the primary could not be
// asked or refused (the restore is then retried later as a whole).
func (b *Backend) restore(ctx context.Context, z Zone, k divert.Key, rec nameRec) ([]Conflict, error) {
	err := b.swap(ctx, z, rec.Name, "restore", rec.Diverted, rec.Original)
	if !errors.Is(err, ErrConflict) {
		return nil, err
	}
	var out []Conflict
	for _, t := range types {
		// Twice at most: a type changed between the read and its swap is
		// read again and then reported as found.
		for attempt := 0; ; attempt++ {
			cur, err := b.read(ctx, z, rec.Name)
			if err != nil {
				return nil, err
			}
			found := cur.get(t)
			if sameSet(found, rec.Original.get(t)) {
				break
			}
			if attempt == 0 && sameSet(found, rec.Diverted.get(t)) {
				err := b.swap(ctx, z, rec.Name, "restore", rec.Diverted, rec.Original, t)
				if err == nil {
					break
				}
				if !errors.Is(err, ErrConflict) {
					return nil, err
				}
				continue
			}
			out = append(out, Conflict{Name: rec.Name, Type: dns.TypeToString[t], Zone: z.Name,
				Diverted: addrStrings(rec.Diverted.get(t)), Found: addrStrings(found),
				Original: addrStrings(rec.Original.get(t)), Since: time.Now().UTC(), CUID: k.CUID, MID: k.MID})
			break
		}
	}
	return out, nil
}

// conflictError is the ErrConflict error of a restore that kept the
// operator's records for the conflicts cs (nil if there is none).
func conflictError(z Zone, name string, cs []Conflict) error {
	if len(cs) == 0 {
		return nil
	}
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s has %s (diverted %s; original %s not put back)", c.Type, orNone(c.Found), orNone(c.Diverted), orNone(c.Original))
	}
	msg := strings.Join(parts, "; ")
	if len(cs) < len(types) {
		msg += "; the other type was restored"
	}
	return newError("restore", name, z, nil, fmt.Errorf("%w: %s; kept until cleared (ClearConflict)", ErrConflict, msg))
}

func addrStrings(addrs []netip.Addr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	slices.Sort(out)
	return out
}
