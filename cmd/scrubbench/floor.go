package main

import (
	"encoding/json"
	"errors"
	"fmt"
)

// floorTable is the hand-written table of the floor.
const floorTable = "sbn_floor"

// floorScript is the floor for `nft -f -`: one rule at the same hook and
// priority as scrub.NFT's ingress chain, dropping what the bench sends to
// floorDst.
func floorScript(iface string) string {
	return fmt.Sprintf(`table netdev %s {
	chain in {
		type filter hook ingress device "%s" priority -500; policy accept;
		ip daddr %s udp sport %d counter drop
	}
}
`, floorTable, iface, floorDst, srcAddr.Port())
}

// parseNFTCounter reads the packets of the one counter in the output of
// `nft -j list table ...`.
func parseNFTCounter(out []byte) (uint64, error) {
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Expr []map[string]json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return 0, fmt.Errorf("nft -j: %w", err)
	}
	var found []uint64
	for _, o := range doc.Nftables {
		if o.Rule == nil {
			continue
		}
		for _, e := range o.Rule.Expr {
			raw, ok := e["counter"]
			if !ok {
				continue
			}
			var c struct {
				Packets *uint64 `json:"packets"`
			}
			if err := json.Unmarshal(raw, &c); err != nil || c.Packets == nil {
				return 0, fmt.Errorf("nft -j: counter %s: not an anonymous counter", raw)
			}
			found = append(found, *c.Packets)
		}
	}
	if len(found) != 1 {
		return 0, errors.New("nft -j: want exactly one counter in the floor table")
	}
	return found[0], nil
}
