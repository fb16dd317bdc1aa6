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
	var as []data.Alias
	if len(names) == 0 {
		all, _, err := c.Aliases(ctx)
		if err != nil {
			return err
		}
		as = all.Alias
	}
	for _, n := range names {
		a, _, err := c.Alias(ctx, n)
		if err != nil {
			return err
		}
		as = append(as, *a)
	}
	done := make([]string, 0, len(as))
	var last *dataclient.Response
	for _, a := range as {
		r, err := c.PutAlias(ctx, a)
		if err != nil {
			return fmt.Errorf("alias %s: %w", a.Name, err)
		}
		done, last = append(done, a.Name), r
	}
	return printRefreshed(g, "alias", done, last)
}

// refreshACLs is refreshAliases for ACLs (RFC 8783 §7.2), each as the
// server has its configuration (content=config).
func refreshACLs(ctx context.Context, g *globals, c *dataclient.Client, names []string) error {
	var as []data.ACL
	if len(names) == 0 {
		all, _, err := c.ACLs(ctx)
		if err != nil {
			return err
		}
		as = all.ACL
	}
	for _, n := range names {
		a, _, err := c.ACL(ctx, n, "config")
		if err != nil {
			return err
		}
		as = append(as, *a)
	}
	done := make([]string, 0, len(as))
	var last *dataclient.Response
	for _, a := range as {
		r, err := c.PutACL(ctx, a)
		if err != nil {
			return fmt.Errorf("acl %s: %w", a.Name, err)
		}
		done, last = append(done, a.Name), r
	}
	return printRefreshed(g, "acl", done, last)
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
