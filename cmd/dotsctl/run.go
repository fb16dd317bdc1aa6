package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

const usage = `usage: dotsctl [--config FILE] [-o table|json] [--timeout 10s] [--heavy-loss] COMMAND [ARGS]

commands:
  mitigate --target PREFIX [--target ...] [--port 443[-444]] [--proto tcp|udp|N]
           [--fqdn NAME] [--uri URI] [--lifetime SECONDS|indefinite] [--on-signal-loss] [--mid N]
           [--countermeasure rtbh|flowspec|scrubbing] [--alias NAME] [--acl NAME=ACTIVATION]
                                   request a mitigation (prints the mid and the server's answer);
                                   --alias names targets made with dotsctl alias, --acl switches a
                                   data-channel ACL during the attack (RFC 9133; a new mid)
  status [MID] [--watch [--interval 5s]]
                                   show one or all mitigations; --watch follows them until Ctrl-C:
                                   redrawn on every notification (CoAP Observe) and re-read every
                                   --interval (at least 1s) for the drop counters and rates; with
                                   -o json one JSON object a line
  withdraw MID                     withdraw a mitigation
  efficacy MID under-attack|mitigated
                                   report how well the mitigation works
  session get                      show the session configuration (limits and current values)
  session set --sid N [--heartbeat-interval S] [--missing-hb-allowed N] [--idle-heartbeat-interval S]
  session reset                    back to the server's defaults
  agent                            keep a session with heartbeats, reconnecting as RFC 9132 says;
                                   while it runs, mitigate, status, withdraw and efficacy go over
                                   its session (a 0600 socket beside the state file); it refreshes
                                   the client's mitigations before their lifetime ends and follows
                                   the session configuration, redirects and a return to DTLS
  completion bash|zsh|fish         print a shell completion script, e.g. source <(dotsctl completion bash)

data channel (RFC 8783, at the configuration's data-channel: https://HOST:PORT):
  alias create --name NAME [--target PREFIX ...] [--port 443[-444] ...] [--protocol tcp|udp|N ...]
               [--fqdn NAME ...] [--uri URI ...] | --file FILE
                                   name resources for mitigate --alias (FILE: JSON or YAML body)
  alias list [NAME]                show the aliases and when they expire
  alias delete NAME
  alias refresh [NAME ...]         restart the lifetime of the aliases (all without a NAME); the
                                   server drops an entry not refreshed for a week (RFC 8783)
  acl create --name NAME [--src PREFIX] [--dst PREFIX] [--protocol tcp|udp|icmp|N]
             [--dst-port 80|80-99|>=1024] [--src-port ...] [--tcp-flags "[not] [any] syn,ack"]
             [--fragment "[not] [any] isf,ff,lf"] [--action drop|accept|rate-limit=BYTES/S]
             [--activation immediate|activate-when-mitigating|deactivate] | --file FILE
                                   install a filtering rule (RFC 8783 §7.2)
  acl list [NAME]                  show the ACLs, their activation and matched counters
  acl delete NAME
  acl activate NAME ACTIVATION     change an ACL's activation-type over the data channel
  acl refresh [NAME ...]           restart the lifetime of the ACLs, as alias refresh
  capabilities                     the filtering the server supports

--heavy-loss (or heavy-loss: true in the configuration) is for a command that opens its own
session through a link that loses most packets: a 250 ms DTLS handshake timer without backoff,
every datagram sent twice within a budget, and requests repeated after 500 ms even without a
round-trip estimate (README.md, "Signalling through heavy loss").

The configuration defaults to $DOTSCTL_CONFIG.
`

// globals are the options before the command.
type globals struct {
	config  string
	output  string
	timeout time.Duration
	// heavyLoss is --heavy-loss: HeavyLoss for this command's session.
	heavyLoss bool
	stdout    io.Writer
	stderr    io.Writer
	// session, in the agent, is its established session, which the
	// commands it serves use (and do not close).
	session *dotsclient.Client
	// sessions, in the agent, keeps what a reconnect resumes ((D)TLS
	// session tickets and ids).
	sessions *dotsclient.SessionCache
}

// commands are dotsctl's commands by name.
func commands() map[string]func(context.Context, *globals, []string) error {
	return map[string]func(context.Context, *globals, []string) error{
		"mitigate": cmdMitigate, "status": cmdStatus, "withdraw": cmdWithdraw,
		"efficacy": cmdEfficacy, "session": cmdSession, "agent": cmdAgent,
		"alias": cmdAlias, "acl": cmdACL, "capabilities": cmdCapabilities,
		"completion": cmdCompletion,
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{stdout: stdout, stderr: stderr}
	fs := globalFlags(g)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if g.output != "table" && g.output != "json" {
		return fmt.Errorf("-o %q: use table or json", g.output)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("a command is required")
	}
	cmd, cargs := rest[0], rest[1:]
	f, ok := commands()[cmd]
	if !ok {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	handled, err := viaAgent(ctx, g, cmd, cargs)
	if !handled {
		err = f(ctx, g, cargs)
	}
	if err != nil {
		if gf := globalFlagIn(cargs); gf != "" {
			return fmt.Errorf("%w (%s is a global option: give it before the command, as in dotsctl %s ... %s)", err, gf, gf, cmd)
		}
		return err
	}
	return nil
}

// globalFlags are the options before the command, into g.
func globalFlags(g *globals) *flag.FlagSet {
	fs := flag.NewFlagSet("dotsctl", flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	fs.Usage = func() { fmt.Fprint(g.stderr, usage) }
	fs.StringVar(&g.config, "config", os.Getenv("DOTSCTL_CONFIG"), "configuration file")
	fs.StringVar(&g.output, "o", "table", "output: table or json")
	fs.DurationVar(&g.timeout, "timeout", 15*time.Second, "time limit of one request")
	fs.BoolVar(&g.heavyLoss, "heavy-loss", false, "signal through heavy loss: shorter DTLS handshake timer, each datagram twice (bounded)")
	return fs
}

// globalFlagIn returns a global option given after the command, if any.
func globalFlagIn(args []string) string {
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if strings.HasPrefix(a, "-") && (name == "o" || name == "config" || name == "timeout" || name == "heavy-loss") {
			return "-" + name
		}
	}
	return ""
}

// parseInterleaved parses flags that may come before or after positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	if fc, ok := fs.Output().(*flagCollector); ok { // completion.go
		fc.sets = append(fc.sets, fs)
		return nil, errFlagsCollected
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (g *globals) dial(ctx context.Context) (*dotsclient.Client, *ctlConfig, error) {
	cfg, err := loadCtlConfig(g.config)
	if err != nil {
		return nil, nil, err
	}
	if g.session != nil {
		return g.session, cfg, nil
	}
	cc, err := g.clientConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	c, err := dotsclient.Dial(dctx, cc)
	if err != nil {
		return nil, nil, err
	}
	return c, cfg, nil
}

// clientConfig is the session's configuration: the file's, with what
// the agent and the global options add.
func (g *globals) clientConfig(cfg *ctlConfig) (dotsclient.Config, error) {
	cc, err := cfg.clientConfig()
	if err != nil {
		return cc, err
	}
	cc.Sessions = g.sessions
	cc.HeavyLoss = cc.HeavyLoss || g.heavyLoss
	return cc, nil
}

// close ends a session dial opened (not the agent's).
func (g *globals) close(c *dotsclient.Client) {
	if c != g.session {
		c.Close()
	}
}

func (g *globals) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, g.timeout)
}

// refused turns a 4.xx/5.xx answer into an error carrying the server's diagnostic.
func refused(r *dotsclient.Response) error {
	if err := r.Err(); err != nil {
		var pe *dots.Error
		if errors.As(err, &pe) {
			return fmt.Errorf("server refused the request: %s %s", pe.Code, pe.Diag)
		}
		return err
	}
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func parsePort(s string) (dots.PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	l, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return dots.PortRange{}, fmt.Errorf("--port %q: want a port or a range like 443-444", s)
	}
	pr := dots.PortRange{LowerPort: uint16(l)}
	if isRange {
		h, err := strconv.ParseUint(hi, 10, 16)
		if err != nil || h < l {
			return dots.PortRange{}, fmt.Errorf("--port %q: the range must be LOW-HIGH with LOW <= HIGH", s)
		}
		pr.UpperPort = dots.Ptr(uint16(h))
	}
	return pr, nil
}

var protocols = map[string]uint32{"icmp": 1, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "icmpv6": 58, "sctp": 132}

func parseProto(s string) (uint32, error) {
	if p, ok := protocols[strings.ToLower(s)]; ok {
		return p, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("--proto %q: use tcp, udp, icmp, icmpv6, sctp or a number 0-255", s)
	}
	return uint32(n), nil
}

func parseLifetime(s string) (int64, error) {
	if s == "indefinite" || s == "-1" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > 1<<32-1 {
		return 0, fmt.Errorf("--lifetime %q: use seconds (1-4294967295) or indefinite", s)
	}
	return n, nil
}

func parseMID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("mid %q: want a number (see dotsctl status)", s)
	}
	return uint32(n), nil
}
