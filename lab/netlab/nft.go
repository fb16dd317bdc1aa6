//go:build linux

package netlab

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
)

// nft is an nftables connection inside node's namespace.
func (l *Lab) nft(node string) (*nftables.Conn, error) {
	n, err := l.node(node)
	if err != nil {
		return nil, err
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(n.ns)))
	if err != nil {
		return nil, fmt.Errorf("netlab: %s: nftables: %w", node, err)
	}
	return c, nil
}

// NFTTables lists the nftables tables (of every family) in node's
// namespace.
func (l *Lab) NFTTables(node string) ([]string, error) {
	c, err := l.nft(node)
	if err != nil {
		return nil, err
	}
	defer c.CloseLasting()
	ts, err := c.ListTables()
	if err != nil {
		return nil, fmt.Errorf("netlab: %s: list tables: %w", node, err)
	}
	var names []string
	for _, t := range ts {
		names = append(names, t.Name)
	}
	return names, nil
}

// NFTCount is one named counter's value.
type NFTCount struct{ Packets, Bytes uint64 }

// NFTCounters reads the named counters of the netdev table in node's
// namespace (none when the table does not exist).
func (l *Lab) NFTCounters(node, table string) (map[string]NFTCount, error) {
	c, err := l.nft(node)
	if err != nil {
		return nil, err
	}
	defer c.CloseLasting()
	out := map[string]NFTCount{}
	objs, err := c.GetObjects(&nftables.Table{Name: table, Family: nftables.TableFamilyNetdev})
	if err != nil {
		return out, nil // no such table
	}
	for _, o := range objs {
		if co, ok := o.(*nftables.CounterObj); ok {
			out[co.Name] = NFTCount{co.Packets, co.Bytes}
		}
	}
	return out, nil
}

// ruleCounterPrefix starts the names of scrubd's per-rule counters (what
// a drop rule dropped); the mitigations' own counters count every packet
// to their targets.
const ruleCounterPrefix = "r_"

// ScrubberDropped sums scrubd's rule counters in the lab table.
func (l *Lab) ScrubberDropped() (NFTCount, error) {
	cs, err := l.NFTCounters(Scrubber, LabTable)
	var sum NFTCount
	for name, c := range cs {
		if strings.HasPrefix(name, ruleCounterPrefix) {
			sum.Packets += c.Packets
			sum.Bytes += c.Bytes
		}
	}
	return sum, err
}

// labTableHolds reports whether `nft list table netdev levee_lab` in the
// scrubber names the target and a drop rule's counter: scrubd's table
// holds the mitigation.
func (l *Lab) labTableHolds(ctx context.Context) bool {
	out, err := l.Exec(ctx, Scrubber, "nft", "list", "table", "netdev", LabTable)
	return err == nil && strings.Contains(out, TargetAddr.String()) && strings.Contains(out, ruleCounterPrefix)
}

// NFTRuleset is `nft -j list ruleset` in node's namespace with what
// changes while nothing is changed left out: handles, counter values and
// the metainfo header. Objects are sorted, one JSON text per line, so two
// rulesets compare as strings and differ line by line.
func (l *Lab) NFTRuleset(ctx context.Context, node string) (string, error) {
	out, err := l.Exec(ctx, node, "nft", "-j", "list", "ruleset")
	if err != nil {
		return "", err
	}
	var doc struct {
		Nftables []map[string]any `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return "", fmt.Errorf("netlab: %s: nft -j: %w", node, err)
	}
	var lines []string
	for _, o := range doc.Nftables {
		if _, ok := o["metainfo"]; ok {
			continue
		}
		b, err := json.Marshal(normalize(o))
		if err != nil {
			return "", fmt.Errorf("netlab: %s: nft -j: %w", node, err)
		}
		lines = append(lines, string(b))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n"), nil
}

// normalize drops handles and counter values at every depth, and sorts
// the elements of sets (their order is the kernel's).
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			switch k {
			case "handle", "packets", "bytes":
				continue
			case "elem":
				out[k] = sortedJSON(x)
				continue
			}
			out[k] = normalize(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalize(x)
		}
		return out
	}
	return v
}

func sortedJSON(v any) any {
	xs, ok := v.([]any)
	if !ok {
		return normalize(v)
	}
	type kv struct {
		key string
		val any
	}
	var s []kv
	for _, x := range xs {
		n := normalize(x)
		b, _ := json.Marshal(n)
		s = append(s, kv{string(b), n})
	}
	slices.SortFunc(s, func(a, b kv) int { return strings.Compare(a.key, b.key) })
	out := make([]any, len(s))
	for i := range s {
		out[i] = s[i].val
	}
	return out
}
