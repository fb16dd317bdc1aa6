package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"gopkg.in/yaml.v3"
)

// maxDataFile bounds a --file body.
const maxDataFile = 4 << 20

// readDataFile reads a data-channel body from a JSON or YAML file and
// returns it as JSON: a JSON file as it is (RFC 8783's example bodies work
// unchanged), a YAML one converted (yamlToJSON).
func readDataFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--file: %w", err)
	}
	if len(b) > maxDataFile {
		return nil, fmt.Errorf("--file %s: %d bytes, more than the %d a body may have", path, len(b), maxDataFile)
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		if !json.Valid(t) {
			var v any
			err := json.Unmarshal(t, &v)
			return nil, fmt.Errorf("--file %s: not valid JSON: %v", path, err)
		}
		return t, nil
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("--file %s: neither JSON nor YAML: %v", path, err)
	}
	if n.Kind == 0 {
		return nil, fmt.Errorf("--file %s is empty: it holds the body, e.g. {\"ietf-dots-data-channel:acls\": {\"acl\": [...]}}", path)
	}
	var out bytes.Buffer
	if err := yamlToJSON(&out, &n); err != nil {
		return nil, fmt.Errorf("--file %s: %w", path, err)
	}
	return out.Bytes(), nil
}

// yamlToJSON writes a YAML document as JSON with RFC 7951's types in mind:
// integers become JSON numbers, and a plain scalar that reads as a float
// becomes a string, as is (decimal64 is a JSON string, e.g. a rate-limit
// of 20.00 stays "20.00").
func yamlToJSON(out *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return fmt.Errorf("line %d: want one YAML document", n.Line)
		}
		return yamlToJSON(out, n.Content[0])
	case yaml.AliasNode:
		return yamlToJSON(out, n.Alias)
	case yaml.MappingNode:
		out.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				out.WriteByte(',')
			}
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: a key must be a plain name", k.Line)
			}
			writeJSONString(out, k.Value)
			out.WriteByte(':')
			if err := yamlToJSON(out, n.Content[i+1]); err != nil {
				return err
			}
		}
		out.WriteByte('}')
		return nil
	case yaml.SequenceNode:
		out.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				out.WriteByte(',')
			}
			if err := yamlToJSON(out, c); err != nil {
				return err
			}
		}
		out.WriteByte(']')
		return nil
	case yaml.ScalarNode:
		return scalarToJSON(out, n)
	}
	return fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

func scalarToJSON(out *bytes.Buffer, n *yaml.Node) error {
	switch n.ShortTag() {
	case "!!int":
		v, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil {
			u, uerr := strconv.ParseUint(n.Value, 0, 64)
			if uerr != nil {
				return fmt.Errorf("line %d: %q is not an integer", n.Line, n.Value)
			}
			out.WriteString(strconv.FormatUint(u, 10))
			return nil
		}
		out.WriteString(strconv.FormatInt(v, 10))
	case "!!bool":
		var v bool
		if err := n.Decode(&v); err != nil {
			return fmt.Errorf("line %d: %v", n.Line, err)
		}
		out.WriteString(strconv.FormatBool(v))
	case "!!null":
		out.WriteString("null")
	default: // !!str, !!float (decimal64 as the string written), timestamps
		writeJSONString(out, n.Value)
	}
	return nil
}

func writeJSONString(out *bytes.Buffer, s string) {
	b, _ := json.Marshal(s) // a string always encodes
	out.Write(b)
}
