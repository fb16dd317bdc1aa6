package datachannel

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/levee-dots/levee/dots/data"
	"github.com/levee-dots/levee/service"
)

// query holds the RFC 8040 §4.8 query parameters of a request.
type query struct {
	content string // "all", "config" or "nonconfig" (§4.8.1)
	depth   int    // 0: unbounded (§4.8.2)
	insert  service.Insert
}

// parseQuery accepts content and depth on GET and HEAD, insert and point on
// POST and PUT (RFC 8040 §4.8: any other parameter, or one on another
// method, is a 400 invalid-value).
func parseQuery(r *http.Request) (query, error) {
	q := query{content: "all"}
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	edit := r.Method == http.MethodPost || r.Method == http.MethodPut
	for k, vs := range r.URL.Query() {
		if len(vs) != 1 {
			return q, data.Errorf(400, data.TagInvalidValue, "query parameter %q is given %d times", k, len(vs))
		}
		v := vs[0]
		switch {
		case k == "content" && get:
			if v != "all" && v != "config" && v != "nonconfig" {
				return q, data.Errorf(400, data.TagInvalidValue, "content=%q is not all, config or nonconfig (RFC 8040 §4.8.1)", v)
			}
			q.content = v
		case k == "depth" && get:
			if v == "unbounded" {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				return q, data.Errorf(400, data.TagInvalidValue, "depth=%q is not unbounded or 1..65535 (RFC 8040 §4.8.2)", v)
			}
			q.depth = n
		case k == "insert" && edit:
			q.insert.Where = v
		case k == "point" && edit:
			p, err := pointName(v)
			if err != nil {
				return q, err
			}
			q.insert.Point = p
		default:
			return q, data.Errorf(400, data.TagInvalidValue, "query parameter %q is not supported on %s (RFC 8040 §4.8)", k, r.Method)
		}
	}
	return q, nil
}

// pointName takes the ACL name out of a point value: the path of the
// list entry (RFC 8040 §4.8.6), e.g.
// /ietf-dots-data-channel:dots-data/dots-client=X/acls/acl=NAME; a bare
// name is accepted too.
func pointName(v string) (string, error) {
	if v == "" {
		return "", data.Errorf(400, data.TagInvalidValue, "point is empty")
	}
	seg := v
	for i := len(v) - 1; i >= 0; i-- {
		if v[i] == '/' {
			seg = v[i+1:]
			break
		}
	}
	if len(seg) > 4 && seg[:4] == "acl=" {
		seg = seg[4:]
	}
	if seg == "" {
		return "", data.Errorf(400, data.TagInvalidValue, "point %q names no acl", v)
	}
	return seg, nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, c service.Client, t target, q query) error {
	var (
		name string
		v    any
	)
	svc := s.opts.Service
	switch t.resource() {
	case "root", "client":
		dc, err := svc.DataClient(c)
		if err != nil && t.resource() == "client" {
			return err
		}
		var clients []data.DotsClient
		if err == nil {
			filterClient(dc, q.content)
			clients = []data.DotsClient{*dc}
		}
		if t.resource() == "client" {
			name, v = data.NameDotsClient, clients
			break
		}
		d := &data.DotsData{DotsClient: clients}
		if q.content != "config" {
			d.Capabilities = svc.DataCapabilities()
		}
		name, v = data.NameDotsData, d
	case "capabilities":
		caps := svc.DataCapabilities()
		if q.content == "config" {
			caps = &data.Capabilities{} // config false as a whole
		}
		name, v = data.NameCapabilities, caps
	case "aliases", "alias":
		all, err := svc.Aliases(c, t.name)
		if err != nil {
			return err
		}
		for i := range all {
			filterAlias(&all[i], q.content)
		}
		if t.kind == "alias" {
			name, v = data.NameAlias, all
		} else {
			name, v = data.NameAliases, &data.Aliases{Alias: all}
		}
	case "acls", "acl":
		all, err := svc.ACLs(c, t.name)
		if err != nil {
			return err
		}
		for i := range all {
			filterACL(&all[i], q.content)
		}
		if t.kind == "acl" {
			name, v = data.NameACL, all
		} else {
			name, v = data.NameACLs, &data.ACLs{ACL: all}
		}
	}
	body, err := render(name, v, q.depth)
	if err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		body = nil
	}
	s.reply(w, http.StatusOK, body)
	return nil
}

// Content filtering (RFC 8040 §4.8.1): pending-lifetime and statistics are
// the only non-configuration nodes of a client's tree; list keys stay, so
// that entries can be told apart.
func filterClient(dc *data.DotsClient, content string) {
	if dc.Aliases != nil {
		for i := range dc.Aliases.Alias {
			filterAlias(&dc.Aliases.Alias[i], content)
		}
	}
	if dc.ACLs != nil {
		for i := range dc.ACLs.ACL {
			filterACL(&dc.ACLs.ACL[i], content)
		}
	}
	if content == "nonconfig" {
		dc.CDID = ""
	}
}

func filterAlias(a *data.Alias, content string) {
	switch content {
	case "config":
		a.PendingLifetime = nil
	case "nonconfig":
		*a = data.Alias{Name: a.Name, PendingLifetime: a.PendingLifetime}
	}
}

func filterACL(a *data.ACL, content string) {
	switch content {
	case "config":
		a.PendingLifetime = nil
		for i := range a.ACEs.ACE {
			a.ACEs.ACE[i].Statistics = nil
		}
	case "nonconfig":
		var aces []data.ACE
		for _, e := range a.ACEs.ACE {
			if e.Statistics != nil {
				aces = append(aces, data.ACE{Name: e.Name, Statistics: e.Statistics})
			}
		}
		*a = data.ACL{Name: a.Name, PendingLifetime: a.PendingLifetime, ACEs: data.ACEs{ACE: aces}}
	}
}

// render encodes {name: v}, cut at depth levels (RFC 8040 §4.8.2: the
// target resource is level 1; nodes deeper than depth are left out).
func render(name string, v any, depth int) ([]byte, error) {
	b, err := json.Marshal(map[string]any{name: v})
	if err != nil || depth == 0 {
		return b, err
	}
	var top map[string]any
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, err
	}
	top[name] = prune(top[name], 1, depth)
	return json.Marshal(top)
}

func prune(v any, level, depth int) any {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if level+1 > depth {
				delete(x, k)
				continue
			}
			x[k] = prune(c, level+1, depth)
		}
	case []any:
		for i, c := range x {
			x[i] = prune(c, level, depth)
		}
	}
	return v
}
