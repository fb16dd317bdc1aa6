package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/levee-dots/levee/dataclient"
	"github.com/levee-dots/levee/dots/data"
)

// refreshAliases puts the named aliases (all of them when none is named)
// back as the server has them, which restarts their lifetime: RFC 8783
// keeps an entry at least 10080 minutes unless it is refreshed (§6.1).
func refreshAliases(ctx context.Context, g *globals, c *dataclient.Client, names []string) error {
	return refreshEntries(ctx, g, "alias", names,
		func() ([]data.Alias, error) {
			all, _, err := c.Aliases(ctx)
			if err != nil {
				return nil, err
			}
			return all.Alias, nil
		},
		func(n string) (*data.Alias, error) { a, _, err := c.Alias(ctx, n); return a, err },
		func(a data.Alias) (*dataclient.Response, error) { return c.PutAlias(ctx, a) },
		func(a data.Alias) string { return a.Name })
}

// refreshACLs is refreshAliases for ACLs (RFC 8783 §7.2), each as the
// server has its configuration (content=config).
func refreshACLs(ctx context.Context, g *globals, c *dataclient.Client, names []string) error {
	return refreshEntries(ctx, g, "acl", names,
		func() ([]data.ACL, error) {
			all, _, err := c.ACLs(ctx)
			if err != nil {
				return nil, err
			}
			return all.ACL, nil
		},
		func(n string) (*data.ACL, error) { a, _, err := c.ACL(ctx, n, "config"); return a, err },
		func(a data.ACL) (*dataclient.Response, error) { return c.PutACL(ctx, a) },
		func(a data.ACL) string { return a.Name })
}

// refreshEntries reads the named entries (all without names) and puts
// each back as it is.
func refreshEntries[T any](ctx context.Context, g *globals, kind string, names []string,
	all func() ([]T, error), one func(string) (*T, error), put func(T) (*dataclient.Response, error), name func(T) string) error {
	var es []T
	if len(names) == 0 {
		got, err := all()
		if err != nil {
			return err
		}
		es = got
	}
	for _, n := range names {
		e, err := one(n)
		if err != nil {
			return err
		}
		es = append(es, *e)
	}
	done := make([]string, 0, len(es))
	var last *dataclient.Response
	for _, e := range es {
		r, err := put(e)
		if err != nil {
			return fmt.Errorf("%s %s: %w", kind, name(e), err)
		}
		done, last = append(done, name(e)), r
	}
	return printRefreshed(g, kind, done, last)
}

func printRefreshed(g *globals, kind string, names []string, last *dataclient.Response) error {
	if g.output == "json" {
		code := ""
		if last != nil {
			code = strconv.Itoa(last.Status)
		}
		return printJSON(g, struct {
			Code      string   `json:"code,omitempty"`
			Refreshed []string `json:"refreshed"`
		}{code, names})
	}
	if len(names) == 0 {
		_, err := fmt.Fprintf(g.stdout, "no %s to refresh\n", map[string]string{"alias": "aliases", "acl": "ACLs"}[kind])
		return err
	}
	_, err := fmt.Fprintf(g.stdout, "%s %s refreshed (%d)\n", kind, strings.Join(names, ", "), last.Status)
	return err
}
