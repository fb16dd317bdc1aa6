package dataclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/levee-dots/levee/dots/data"
)

// dataPath is the data resource of the DOTS data channel's YANG module
// below the RESTCONF root (RFC 8783 §5).
const dataPath = "/data/" + data.NameDotsData

// clientPath is the client's own dots-client entry.
func (c *Client) clientPath() string { return dataPath + "/dots-client=" + key(c.cuid) }

// Register registers the client (RFC 8783 §5.1: a POST of its cuid on
// dots-data). A 409 answer means the cuid is registered already, which is
// no error. The client registers itself before its first request on its
// aliases or ACLs; Register is for callers that want it done earlier.
func (c *Client) Register(ctx context.Context) error {
	body, err := data.EncodeClients([]data.DotsClient{{CUID: c.cuid}})
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPost, dataPath, nil, body)
	var e *Error
	if err == nil || errors.As(err, &e) && e.Status == http.StatusConflict {
		c.mu.Lock()
		c.registered = true
		c.mu.Unlock()
		return nil
	}
	if e != nil {
		return fmt.Errorf("registering cuid %s: %w", c.cuid, err)
	}
	return err
}

// own is do on the client's dots-client entry, registering the client first
// once per Client.
func (c *Client) own(ctx context.Context, method, sub string, query url.Values, body []byte) (*Response, error) {
	c.mu.Lock()
	done := c.registered
	c.mu.Unlock()
	if !done {
		if err := c.Register(ctx); err != nil {
			return nil, err
		}
	}
	return c.do(ctx, method, c.clientPath()+sub, query, body)
}

var contentAll = url.Values{"content": {"all"}}

// CreateAliases installs aliases (RFC 8783 §6.1: a POST of the aliases
// container on the client's entry); 409 if one of them exists.
func (c *Client) CreateAliases(ctx context.Context, a *data.Aliases) (*Response, error) {
	body, err := data.EncodeAliases(a)
	if err != nil {
		return nil, err
	}
	return c.own(ctx, http.MethodPost, "", nil, body)
}

// Aliases retrieves the client's aliases with their pending-lifetime (RFC
// 8783 §6.2); none is an empty list.
func (c *Client) Aliases(ctx context.Context) (*data.Aliases, *Response, error) {
	r, err := c.own(ctx, http.MethodGet, "/aliases", contentAll, nil)
	if isNotFound(err) {
		return &data.Aliases{}, &Response{Status: http.StatusOK}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	a, err := data.DecodeAliases(r.Body, data.Response)
	if err != nil {
		return nil, r, fmt.Errorf("the server's aliases: %w", err)
	}
	return a, r, nil
}

// Alias retrieves one alias (RFC 8783 §6.2).
func (c *Client) Alias(ctx context.Context, name string) (*data.Alias, *Response, error) {
	r, err := c.own(ctx, http.MethodGet, "/aliases/alias="+key(name), contentAll, nil)
	if err != nil {
		return nil, nil, err
	}
	a, err := data.DecodeAliases(r.Body, data.Response)
	if err != nil {
		return nil, r, fmt.Errorf("the server's alias %s: %w", name, err)
	}
	if len(a.Alias) != 1 {
		return nil, r, fmt.Errorf("the server answered %d aliases for alias %s, want one", len(a.Alias), name)
	}
	return &a.Alias[0], r, nil
}

// PutAlias creates or replaces one alias (a PUT on the alias, RFC 8783
// §6.1): how a client refreshes it before its pending-lifetime runs out
// (the alias as retrieved, without that read-only node).
func (c *Client) PutAlias(ctx context.Context, a data.Alias) (*Response, error) {
	a.PendingLifetime = nil
	body, err := data.EncodeAlias(a)
	if err != nil {
		return nil, err
	}
	return c.own(ctx, http.MethodPut, "/aliases/alias="+key(a.Name), nil, body)
}

// DeleteAlias deletes an alias (RFC 8783 §6.3).
func (c *Client) DeleteAlias(ctx context.Context, name string) (*Response, error) {
	return c.own(ctx, http.MethodDelete, "/aliases/alias="+key(name), nil, nil)
}

// CreateACLs installs filtering rules (RFC 8783 §7.2: a POST of the acls
// container on the client's entry); 409 if one of them exists.
func (c *Client) CreateACLs(ctx context.Context, a *data.ACLs) (*Response, error) {
	body, err := data.EncodeACLs(a)
	if err != nil {
		return nil, err
	}
	return c.own(ctx, http.MethodPost, "", nil, body)
}

// PutACL creates or replaces one ACL (RFC 8783 §7.2, a PUT on the ACL):
// how its activation-type changes, and how a client refreshes it (§7.2:
// the ACL as retrieved, without its read-only nodes).
func (c *Client) PutACL(ctx context.Context, acl data.ACL) (*Response, error) {
	acl.PendingLifetime = nil
	for i := range acl.ACEs.ACE {
		acl.ACEs.ACE[i].Statistics = nil
	}
	body, err := data.EncodeACL(acl)
	if err != nil {
		return nil, err
	}
	return c.own(ctx, http.MethodPut, "/acls/acl="+key(acl.Name), nil, body)
}

// ACLs retrieves the client's ACLs with their pending-lifetime and
// statistics (RFC 8783 §7.3); none is an empty list.
func (c *Client) ACLs(ctx context.Context) (*data.ACLs, *Response, error) {
	r, err := c.own(ctx, http.MethodGet, "/acls", contentAll, nil)
	if isNotFound(err) {
		return &data.ACLs{}, &Response{Status: http.StatusOK}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	a, err := data.DecodeACLs(r.Body, data.Response)
	if err != nil {
		return nil, r, fmt.Errorf("the server's ACLs: %w", err)
	}
	return a, r, nil
}

// ACL retrieves one ACL (RFC 8783 §7.3); content is RFC 8040's content
// query: "all", "config" (what a refresh sends back) or "nonconfig".
func (c *Client) ACL(ctx context.Context, name, content string) (*data.ACL, *Response, error) {
	r, err := c.own(ctx, http.MethodGet, "/acls/acl="+key(name), url.Values{"content": {content}}, nil)
	if err != nil {
		return nil, nil, err
	}
	a, err := data.DecodeACLs(r.Body, data.Response)
	if err != nil {
		return nil, r, fmt.Errorf("the server's ACL %s: %w", name, err)
	}
	if len(a.ACL) != 1 {
		return nil, r, fmt.Errorf("the server answered %d ACLs for ACL %s, want one", len(a.ACL), name)
	}
	return &a.ACL[0], r, nil
}

// DeleteACL deletes an ACL (RFC 8783 §7.4).
func (c *Client) DeleteACL(ctx context.Context, name string) (*Response, error) {
	return c.own(ctx, http.MethodDelete, "/acls/acl="+key(name), nil, nil)
}

// Capabilities retrieves the server's filtering capabilities (RFC 8783
// §7.1); they are not bound to a client, so no registration is needed.
func (c *Client) Capabilities(ctx context.Context) (*data.Capabilities, *Response, error) {
	r, err := c.do(ctx, http.MethodGet, dataPath+"/capabilities", nil, nil)
	if err != nil {
		return nil, nil, err
	}
	caps, err := data.DecodeCapabilities(r.Body)
	if err != nil {
		return nil, r, fmt.Errorf("the server's capabilities: %w", err)
	}
	return caps, r, nil
}

func isNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}
