package data

import (
	"encoding/json"
	"fmt"
)

// Top-level member names (RFC 7951 §4: qualified by the module name).
const (
	NameDotsData     = Module + ":dots-data"
	NameDotsClient   = Module + ":dots-client"
	NameAliases      = Module + ":aliases"
	NameAlias        = Module + ":alias"
	NameACLs         = Module + ":acls"
	NameACL          = Module + ":acl"
	NameCapabilities = Module + ":capabilities"
)

// DecodeClient decodes a dots-client body ({"…:dots-client":[{…}]}) with
// exactly one entry: the registration body of RFC 8783 §5.1 (Request) or a
// GET answer (Response).
func DecodeClient(b []byte, m Mode) (*DotsClient, error) {
	var cs []DotsClient
	if err := decodeListTop(b, NameDotsClient, &cs, m); err != nil {
		return nil, err
	}
	if len(cs) != 1 {
		return nil, bad("/"+NameDotsClient, TagInvalidValue, "want exactly one dots-client entry, got %d", len(cs))
	}
	if err := validate(m, cs[0].Validate, "/"+NameDotsClient); err != nil {
		return nil, err
	}
	return &cs[0], nil
}

func decodeListTop(b []byte, name string, list any, m Mode) error {
	return decodeTopMode(b, map[string]any{name: list}, m)
}

func decodeTopMode(b []byte, targets map[string]any, m Mode) error {
	return decodeTop(b, targets, m == Response)
}

// DecodeAliases decodes an aliases body: the container
// ({"…:aliases":{"alias":[…]}}, RFC 8783 §6.1) or the list itself
// ({"…:alias":[…]}, a PUT on one alias).
func DecodeAliases(b []byte, m Mode) (*Aliases, error) {
	var a Aliases
	if err := decodeTopMode(b, map[string]any{NameAliases: &a, NameAlias: &a.Alias}, m); err != nil {
		return nil, err
	}
	if err := validate(m, a.Validate, "/"+NameAliases); err != nil {
		return nil, err
	}
	return &a, nil
}

// DecodeACLs decodes an acls body: the container ({"…:acls":{"acl":[…]}},
// RFC 8783 §7.2) or the list itself ({"…:acl":[…]}).
func DecodeACLs(b []byte, m Mode) (*ACLs, error) {
	var a ACLs
	if err := decodeTopMode(b, map[string]any{NameACLs: &a, NameACL: &a.ACL}, m); err != nil {
		return nil, err
	}
	if err := validate(m, a.Validate, "/"+NameACLs); err != nil {
		return nil, err
	}
	return &a, nil
}

// DecodeCapabilities decodes a capabilities answer (RFC 8783 §7.1).
func DecodeCapabilities(b []byte) (*Capabilities, error) {
	var c Capabilities
	if err := decodeTop(b, map[string]any{NameCapabilities: &c}, true); err != nil {
		return nil, err
	}
	return &c, nil
}

// DecodeDotsData decodes a GET answer for the dots-data root.
func DecodeDotsData(b []byte) (*DotsData, error) {
	var d DotsData
	if err := decodeTop(b, map[string]any{NameDotsData: &d}, true); err != nil {
		return nil, err
	}
	return &d, nil
}

// validate runs the semantic checks on requests; answers (which content=
// may have filtered) are only checked for types, bounds and unknown members.
func validate(m Mode, fn func(string) error, path string) error {
	if m == Response {
		return nil
	}
	return fn(path)
}

func encode(name string, v any) ([]byte, error) {
	b, err := json.Marshal(map[string]any{name: v})
	if err != nil {
		return nil, fmt.Errorf("data: encode %s: %w", name, err)
	}
	return b, nil
}

// EncodeClients renders {"…:dots-client":[…]}.
func EncodeClients(cs []DotsClient) ([]byte, error) { return encode(NameDotsClient, cs) }

// EncodeAliases renders {"…:aliases":{…}}.
func EncodeAliases(a *Aliases) ([]byte, error) { return encode(NameAliases, a) }

// EncodeAlias renders {"…:alias":[…]} (one alias, as a GET on it answers).
func EncodeAlias(a ...Alias) ([]byte, error) { return encode(NameAlias, a) }

// EncodeACLs renders {"…:acls":{…}}.
func EncodeACLs(a *ACLs) ([]byte, error) { return encode(NameACLs, a) }

// EncodeACL renders {"…:acl":[…]}.
func EncodeACL(a ...ACL) ([]byte, error) { return encode(NameACL, a) }

// EncodeCapabilities renders {"…:capabilities":{…}}.
func EncodeCapabilities(c *Capabilities) ([]byte, error) { return encode(NameCapabilities, c) }

// EncodeDotsData renders {"…:dots-data":{…}}.
func EncodeDotsData(d *DotsData) ([]byte, error) { return encode(NameDotsData, d) }

// TopName returns the name of the single top-level member of a JSON
// object, for a POST whose body may hold one of several containers.
func TopName(b []byte) (string, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return "", bad("", TagMalformedMessage, "body is not a JSON object: %v", err)
	}
	if len(top) != 1 {
		return "", bad("", TagMalformedMessage, "body must hold exactly one member")
	}
	for k := range top {
		return k, nil
	}
	return "", nil
}
