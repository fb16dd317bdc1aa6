package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/levee-dots/levee/dataclient"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dots/data"
	"github.com/levee-dots/levee/pki"
)

// dataClient opens the data channel of the configuration: the URL of its
// data-channel key, the certificate, key and CA of the signal channel, and
// the same cuid (RFC 8783 §3).
func (g *globals) dataClient() (*dataclient.Client, error) {
	cfg, err := loadCtlConfig(g.config)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.DataChannel == "":
		return nil, fmt.Errorf("%s: data-channel: set it to the server's data channel, https://HOST:PORT (dotsd dev writes it)", g.config)
	case cfg.PSK != nil:
		return nil, fmt.Errorf("%s: the data channel needs certificate and key (it runs over TLS, and Go's TLS has no external PSKs)", g.config)
	}
	cert, leaf, err := pki.LoadKeyPair(cfg.Certificate, cfg.Key)
	if err != nil {
		return nil, err
	}
	roots, err := pki.LoadCertPool(cfg.CA)
	if err != nil {
		return nil, err
	}
	cuid, err := cfg.cuid(leaf.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, err
	}
	if cuid == "" {
		cuid = dots.CUIDFromSPKI(leaf.RawSubjectPublicKeyInfo)
	}
	c, err := dataclient.New(dataclient.Config{URL: cfg.DataChannel, Certificate: cert, RootCAs: roots,
		ServerName: cfg.ServerName, CUID: cuid, Timeout: g.timeout})
	if err != nil {
		return nil, fmt.Errorf("%s: data-channel: %w", g.config, err)
	}
	return c, nil
}

// dataErr says, for an error that is no answer of the server, where the
// data channel is configured.
func (g *globals) dataErr(what string, err error) error {
	var de *dataclient.Error
	var pe *data.Error
	if errors.As(err, &de) || errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w (is the data channel up at the data-channel URL of %s?)", what, err, g.config)
}

// dataCmd runs fn with a data-channel client and a request context.
func (g *globals) dataCmd(ctx context.Context, what string, fn func(context.Context, *dataclient.Client) error) error {
	c, err := g.dataClient()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer c.Close()
	rctx, cancel := g.reqCtx(ctx)
	defer cancel()
	if err := fn(rctx, c); err != nil {
		return g.dataErr(what, err)
	}
	return nil
}

func cmdAlias(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return errors.New("alias: use create, list, delete or refresh")
	}
	sub, args := args[0], args[1:]
	what := "alias " + sub
	switch sub {
	case "create":
		fs := flag.NewFlagSet(what, flag.ContinueOnError)
		fs.SetOutput(g.stderr)
		var f aliasFlags
		f.register(fs)
		if pos, err := parseInterleaved(fs, args); err != nil {
			return err
		} else if len(pos) > 0 {
			return fmt.Errorf("%s: unexpected %q (give the alias with --name and targets, or --file)", what, pos[0])
		}
		a, err := f.aliases()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return g.dataCmd(ctx, what, func(ctx context.Context, c *dataclient.Client) error {
			r, err := c.CreateAliases(ctx, a)
			if err != nil {
				return err
			}
			return printDataDone(g, r, fmt.Sprintf("%s created", names(a)))
		})
	case "list":
		if len(args) > 1 {
			return fmt.Errorf("%s: at most one NAME", what)
		}
		return g.dataCmd(ctx, what, func(ctx context.Context, c *dataclient.Client) error {
			if len(args) == 1 {
				a, r, err := c.Alias(ctx, args[0])
				if err != nil {
					return err
				}
				return printAliases(g, r, []data.Alias{*a})
			}
			as, r, err := c.Aliases(ctx)
			if err != nil {
				return err
			}
			return printAliases(g, r, as.Alias)
		})
	case "delete":
		if len(args) != 1 {
			return fmt.Errorf("%s: give exactly one NAME (see dotsctl alias list)", what)
		}
		return g.dataCmd(ctx, what, func(ctx context.Context, c *dataclient.Client) error {
			r, err := c.DeleteAlias(ctx, args[0])
			if err != nil {
				return err
			}
			return printDataDone(g, r, fmt.Sprintf("alias %s deleted", args[0]))
		})
	case "refresh":
		return g.dataCmd(ctx, what, func(ctx context.Context, c *dataclient.Client) error {
			return refreshAliases(ctx, g, c, args)
		})
	}
	return fmt.Errorf("alias: unknown subcommand %q (create, list, delete or refresh)", sub)
}

func names(a *data.Aliases) string {
	if len(a.Alias) == 1 {
		return "alias " + a.Alias[0].Name
	}
	return fmt.Sprintf("%d aliases", len(a.Alias))
}

func cmdACL(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return errors.New("acl: use create, list, delete, activate or refresh")
	}
	sub, args := args[0], args[1:]
	what := "acl " + sub
	switch sub {
	case "create":
		return aclCreate(ctx, g, what, args)
	case "list":
		if len(args) > 1 {
			return fmt.Errorf("%s: at most one NAME", what)
		}
		return g.dataCmd(ctx, what, func(ctx context.Context, c *dataclient.Client) error {
			if len(args) == 1 {
				a, r, err := c.ACL(ctx, args[0], "all")
				if err != nil {
					return err
				}
				return printACLs(g, r, []data.ACL{*a})
			}
			as, r, err := c.ACLs(ctx)
			if err != nil {
				return err
			}
			return printACLs(g, r, as.ACL)
		})
	case "delete":
		if len(args) != 1 {
			return fmt.Errorf("%s: give exactly one NAME (see dotsctl acl list)", what)
		}
		return g.dataCmd(ctx, what, func(ctx context.Context, c *dataclient.Client) error {
			r, err := c.DeleteACL(ctx, args[0])
			if err != nil {
				return err
			}
			return printDataDone(g, r, fmt.Sprintf("acl %s deleted", args[0]))
		})
	case "activate":
		return aclActivate(ctx, g, what, args)
	case "refresh":
		return g.dataCmd(ctx, what, func(ctx context.Context, c *dataclient.Client) error {
			return refreshACLs(ctx, g, c, args)
		})
	}
	return fmt.Errorf("acl: unknown subcommand %q (create, list, delete, activate or refresh)", sub)
}

func aclCreate(ctx context.Context, g *globals, what string, args []string) error {
	fs := flag.NewFlagSet(what, flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	var f aclFlags
	f.register(fs)
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("%s: unexpected %q (give the ACL with --name and match flags, or --file)", what, pos[0])
	}
	a, err := f.acls(fs)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return g.dataCmd(ctx, what, func(ctx context.Context, c *dataclient.Client) error {
		r, err := c.CreateACLs(ctx, a)
		if err != nil {
			return err
		}
		text := fmt.Sprintf("%d ACLs created", len(a.ACL))
		if len(a.ACL) == 1 {
			text = fmt.Sprintf("acl %s created, activation-type %s", a.ACL[0].Name, a.ACL[0].Activation())
		}
		return printDataDone(g, r, text)
	})
}

// aclActivate changes an ACL's activation-type over the data channel: the
// ACL as the server has it (content=config, RFC 8783 §7.3), PUT back with
// the new activation-type (§7.2), which also refreshes its lifetime.
func aclActivate(ctx context.Context, g *globals, what string, args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("%s: give NAME and ACTIVATION (%s)", what, activationWords)
	}
	if _, err := parseActivation(args[1]); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return g.dataCmd(ctx, what, func(ctx context.Context, c *dataclient.Client) error {
		acl, _, err := c.ACL(ctx, args[0], "config")
		if err != nil {
			return err
		}
		at := data.ActivationType(args[1])
		acl.ActivationType = &at
		r, err := c.PutACL(ctx, *acl)
		if err != nil {
			return err
		}
		return printDataDone(g, r, fmt.Sprintf("acl %s: activation-type %s", acl.Name, at))
	})
}

func cmdCapabilities(ctx context.Context, g *globals, args []string) error {
	if len(args) != 0 {
		return errors.New("capabilities: takes no arguments")
	}
	return g.dataCmd(ctx, "capabilities", func(ctx context.Context, c *dataclient.Client) error {
		caps, r, err := c.Capabilities(ctx)
		if err != nil {
			return err
		}
		return printCapabilities(g, r, caps)
	})
}
