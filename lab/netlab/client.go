//go:build linux

package netlab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/levee-dots/levee/dots"
)

// Client is the DOTS client of a scenario: it asks dotsd for a mitigation
// of a target's UDP port, reads its status and withdraws it.
type Client interface {
	// Mitigate returns the mid and dotsd's response code (e.g. "2.01").
	Mitigate(ctx context.Context, target netip.Prefix, port uint16) (mid uint32, code string, err error)
	// Status returns the mitigation's one scope as dotsd reports it.
	Status(ctx context.Context, mid uint32) (dots.Scope, error)
	// Withdraw returns dotsd's response code (e.g. "2.02").
	Withdraw(ctx context.Context, mid uint32) (code string, err error)
}

// ClientFiles is what a Client needs to reach dotsd as client alpha.
type ClientFiles struct {
	Signal         string // dotsd's signal channel (host:port)
	Cert, Key, CAs string
}

// Reporter is a Client that also sends efficacy updates (RFC 9132
// §4.4.3): how the client sees the attack under the mitigation.
type Reporter interface {
	Client
	// Efficacy returns dotsd's response code (e.g. "2.04").
	Efficacy(ctx context.Context, mid uint32, attack dots.AttackStatus) (code string, err error)
}

// dotsctl is the Client that runs the dotsctl command (with -o json) in a
// node's namespace; it asks for countermeasure ("": none, the server
// chooses).
type dotsctl struct {
	l              *Lab
	node, bin      string
	cfg            string
	countermeasure string
}

func (c dotsctl) run(ctx context.Context, v any, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := c.l.Exec(ctx, c.node, c.bin, append([]string{"--config", c.cfg, "-o", "json"}, args...)...)
	if err != nil {
		return fmt.Errorf("dotsctl: %w", err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("dotsctl %v: output: %w: %s", args, err, out)
	}
	return nil
}

type ctlAnswer struct {
	Code string        `json:"code"`
	MID  *uint32       `json:"mid"`
	Body *dots.Message `json:"body"`
}

func (c dotsctl) Mitigate(ctx context.Context, target netip.Prefix, port uint16) (uint32, string, error) {
	args := []string{"mitigate", "--target", target.String(), "--port", strconv.Itoa(int(port)), "--proto", "udp"}
	if c.countermeasure != "" {
		args = append(args, "--countermeasure", c.countermeasure)
	}
	var a ctlAnswer
	if err := c.run(ctx, &a, args...); err != nil {
		return 0, "", err
	}
	if a.MID == nil {
		return 0, a.Code, fmt.Errorf("dotsctl mitigate: %s without a mid", a.Code)
	}
	return *a.MID, a.Code, nil
}

func (c dotsctl) Status(ctx context.Context, mid uint32) (dots.Scope, error) {
	var a ctlAnswer
	if err := c.run(ctx, &a, "status", strconv.FormatUint(uint64(mid), 10)); err != nil {
		return dots.Scope{}, err
	}
	if a.Body == nil || a.Body.MitigationScope == nil || len(a.Body.MitigationScope.Scope) != 1 {
		return dots.Scope{}, fmt.Errorf("dotsctl status %d: %s without one scope", mid, a.Code)
	}
	return a.Body.MitigationScope.Scope[0], nil
}

func (c dotsctl) Withdraw(ctx context.Context, mid uint32) (string, error) {
	return c.code(ctx, "withdraw", strconv.FormatUint(uint64(mid), 10))
}

// Efficacy runs `dotsctl efficacy MID under-attack|mitigated`.
func (c dotsctl) Efficacy(ctx context.Context, mid uint32, attack dots.AttackStatus) (string, error) {
	word := "under-attack"
	switch attack {
	case dots.AttackUnderAttack:
	case dots.AttackMitigated:
		word = "mitigated"
	default:
		return "", fmt.Errorf("dotsctl efficacy: %s: only under-attack and attack-successfully-mitigated", attack)
	}
	return c.code(ctx, "efficacy", strconv.FormatUint(uint64(mid), 10), word)
}

// code runs a dotsctl command and returns dotsd's response code.
func (c dotsctl) code(ctx context.Context, args ...string) (string, error) {
	var a ctlAnswer
	if err := c.run(ctx, &a, args...); err != nil {
		return "", err
	}
	return a.Code, nil
}

// dropped is a scope's pkts-dropped and bytes-dropped (0 when absent).
func dropped(s dots.Scope) (pkts, bytes uint64) {
	if s.PktsDropped != nil {
		pkts = uint64(*s.PktsDropped)
	}
	if s.BytesDropped != nil {
		bytes = uint64(*s.BytesDropped)
	}
	return pkts, bytes
}
