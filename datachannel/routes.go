package datachannel

import (
	"errors"

	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/levee-dots/levee/dots/data"
	"github.com/levee-dots/levee/service"
)

// Root is the data resource of the ietf-dots-data-channel tree.
const Root = "/restconf/data/" + data.Module + ":dots-data"

// target is a parsed request path below Root.
type target struct {
	cuid string // dots-client=cuid, "" at the root
	kind string // "", "capabilities", "aliases", "alias", "acls", "acl"
	name string // alias=name or acl=name
}

// parsePath splits the escaped path into RFC 8040 §3.5.3 segments with
// percent-decoded keys.
func parsePath(escaped string) (target, error) {
	var t target
	rest, ok := strings.CutPrefix(escaped, Root)
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
		return t, data.Errorf(404, data.TagInvalidValue, "no resource %s (the data channel lives at %s)", escaped, Root)
	}
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	if rest == "" || rest == "/" {
		segs = nil
	}
	key := func(seg, list string) (string, bool) {
		v, ok := strings.CutPrefix(seg, list+"=")
		if !ok {
			return "", false
		}
		k, err := url.PathUnescape(v)
		return k, err == nil && k != ""
	}
	bad := data.Errorf(404, data.TagInvalidValue, "no resource %s", escaped)
	switch {
	case len(segs) == 0:
		return t, nil
	case len(segs) == 1 && segs[0] == "capabilities":
		t.kind = "capabilities"
		return t, nil
	}
	if t.cuid, ok = key(segs[0], "dots-client"); !ok {
		return t, bad
	}
	switch {
	case len(segs) == 1:
	case len(segs) == 2 && (segs[1] == "aliases" || segs[1] == "acls"):
		t.kind = segs[1]
	case len(segs) == 3 && segs[1] == "aliases":
		t.kind = "alias"
		if t.name, ok = key(segs[2], "alias"); !ok {
			return t, bad
		}
	case len(segs) == 3 && segs[1] == "acls":
		t.kind = "acl"
		if t.name, ok = key(segs[2], "acl"); !ok {
			return t, bad
		}
	default:
		return t, bad
	}
	return t, nil
}

// allowed lists the methods of each kind of resource.
var allowed = map[string]string{
	"root": "GET, HEAD, POST", "capabilities": "GET, HEAD", "client": "GET, HEAD, POST, PUT, DELETE",
	"aliases": "GET, HEAD, POST", "acls": "GET, HEAD, POST", "alias": "GET, HEAD, PUT, DELETE", "acl": "GET, HEAD, PUT, DELETE",
}

func (t target) resource() string {
	switch {
	case t.kind != "":
		return t.kind
	case t.cuid != "":
		return "client"
	}
	return "root"
}

func (s *Server) restconf(w http.ResponseWriter, r *http.Request) {
	if err := s.serve(w, r); err != nil {
		s.fail(w, r, err)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) error {
	t, err := parsePath(r.URL.EscapedPath())
	if err != nil {
		return err
	}
	res := t.resource()
	if !strings.Contains(allowed[res], r.Method) {
		w.Header().Set("Allow", allowed[res])
		return data.Errorf(405, data.TagOperationNotSup, "%s is not allowed on this resource (allowed: %s)", r.Method, allowed[res])
	}
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	var body []byte
	cuid := t.cuid
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if body, err = s.body(w, r); err != nil {
			return err
		}
		if res == "root" {
			// Registration: the body names the cuid, checked like a
			// path's (RFC 8783 §5.1).
			dc, err := data.DecodeClient(body, data.Request)
			if err != nil {
				return err
			}
			cuid = dc.CUID
		}
	}
	c, err := s.client(r, cuid)
	if err != nil {
		return err
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return s.get(w, r, c, t, q)
	case http.MethodDelete:
		return s.delete(w, c, t)
	case http.MethodPost:
		return s.post(w, c, t, q, body)
	}
	return s.put(w, c, t, q, body)
}

// body reads a bounded request body of media type yang-data+json.
func (s *Server) body(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != mediaType && mt != "application/json") {
		return nil, data.Errorf(415, data.TagInvalidValue, "Content-Type %q is not %s (RFC 8040 §5.2)", r.Header.Get("Content-Type"), mediaType)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, data.Errorf(413, data.TagTooBig, "request body exceeds %d bytes", s.opts.MaxBody)
	}
	if err != nil {
		return nil, data.Errorf(400, data.TagMalformedMessage, "reading the body: %v", err)
	}
	return b, nil
}

func (s *Server) post(w http.ResponseWriter, c service.Client, t target, q query, body []byte) error {
	switch t.resource() {
	case "root":
		if q.insert.Where != "" {
			return errInsertNotOrdered("dots-client")
		}
		dc, err := data.DecodeClient(body, data.Request)
		if err != nil {
			return err
		}
		if _, err := s.opts.Service.RegisterDataClient(c, *dc, false); err != nil {
			return err
		}
		return s.created(w, clientPath(c.CUID))
	case "client", "aliases", "acls":
		return s.postChildren(w, c, t, q, body)
	}
	return data.Errorf(405, data.TagOperationNotSup, "POST is not allowed on this resource")
}

// postChildren creates aliases or ACLs under dots-client=cuid (RFC 8783
// §6.1, §7.2) or under its aliases or acls container.
func (s *Server) postChildren(w http.ResponseWriter, c service.Client, t target, q query, body []byte) error {
	top, err := topName(body)
	if err != nil {
		return err
	}
	isAliases := top == data.NameAliases || top == data.NameAlias
	isACLs := top == data.NameACLs || top == data.NameACL
	switch {
	case t.kind == "aliases" && !isAliases, t.kind == "acls" && !isACLs, !isAliases && !isACLs:
		return data.Errorf(400, data.TagUnknownElement, "unexpected element %q in a POST to this resource", top)
	case isAliases:
		if q.insert.Where != "" {
			return errInsertNotOrdered("alias")
		}
		a, err := data.DecodeAliases(body, data.Request)
		if err != nil {
			return err
		}
		if _, err := s.opts.Service.PutAliases(c, a.Alias, false); err != nil {
			return err
		}
		return s.created(w, clientPath(c.CUID)+"/aliases/alias="+url.PathEscape(a.Alias[0].Name))
	}
	a, err := data.DecodeACLs(body, data.Request)
	if err != nil {
		return err
	}
	if len(a.ACL) == 0 {
		return data.Errorf(400, data.TagMissingAttribute, "no acl in the body")
	}
	if _, err := s.opts.Service.PutACLs(c, a.ACL, false, q.insert); err != nil {
		return err
	}
	return s.created(w, clientPath(c.CUID)+"/acls/acl="+url.PathEscape(a.ACL[0].Name))
}

func errInsertNotOrdered(list string) error {
	return data.Errorf(400, data.TagInvalidValue, "insert applies to ordered-by user lists only (RFC 8040 §4.8.5); %s is not one", list)
}

func (s *Server) put(w http.ResponseWriter, c service.Client, t target, q query, body []byte) error {
	var (
		created bool
		err     error
	)
	switch t.kind {
	case "":
		if q.insert.Where != "" {
			return errInsertNotOrdered("dots-client")
		}
		var dc *data.DotsClient
		if dc, err = data.DecodeClient(body, data.Request); err != nil {
			return err
		}
		if dc.CUID != t.cuid {
			return data.Errorf(400, data.TagInvalidValue, "cuid %s in the body is not the %s of the URI", dc.CUID, t.cuid)
		}
		created, err = s.opts.Service.RegisterDataClient(c, *dc, true)
	case "alias":
		if q.insert.Where != "" {
			return errInsertNotOrdered("alias")
		}
		var a *data.Aliases
		if a, err = data.DecodeAliases(body, data.Request); err != nil {
			return err
		}
		if len(a.Alias) != 1 || a.Alias[0].Name != t.name {
			return data.Errorf(400, data.TagInvalidValue, "a PUT on alias=%s carries exactly that alias", t.name)
		}
		created, err = s.opts.Service.PutAliases(c, a.Alias, true)
	case "acl":
		var a *data.ACLs
		if a, err = data.DecodeACLs(body, data.Request); err != nil {
			return err
		}
		if len(a.ACL) != 1 || a.ACL[0].Name != t.name {
			return data.Errorf(400, data.TagInvalidValue, "a PUT on acl=%s carries exactly that acl", t.name)
		}
		created, err = s.opts.Service.PutACLs(c, a.ACL, true, q.insert)
	default:
		return data.Errorf(405, data.TagOperationNotSup, "PUT is not allowed on this resource")
	}
	if err != nil {
		return err
	}
	if created {
		w.WriteHeader(http.StatusCreated)
	} else {
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

func (s *Server) delete(w http.ResponseWriter, c service.Client, t target) error {
	var err error
	switch t.kind {
	case "":
		err = s.opts.Service.UnregisterDataClient(c)
	case "alias":
		err = s.opts.Service.DeleteAlias(c, t.name)
	case "acl":
		err = s.opts.Service.DeleteACL(c, t.name)
	default:
		return data.Errorf(405, data.TagOperationNotSup, "DELETE is not allowed on this resource")
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func clientPath(cuid string) string { return Root + "/dots-client=" + url.PathEscape(cuid) }

func (s *Server) created(w http.ResponseWriter, location string) error {
	w.Header().Set("Location", location)
	w.WriteHeader(http.StatusCreated)
	return nil
}

// topName returns the single top-level member name of a JSON body.
func topName(body []byte) (string, error) {
	name, err := data.TopName(body)
	if err != nil {
		return "", err
	}
	return name, nil
}
