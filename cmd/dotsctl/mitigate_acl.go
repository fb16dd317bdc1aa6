package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/levee-dots/levee/dots"
)

// activationWords are the activation-type values of RFC 8783 §4.3 (used
// by RFC 9133 too), in the order of their enumeration values 1, 2, 3.
const activationWords = "activate-when-mitigating, immediate or deactivate"

// parseActivation parses an activation-type label.
func parseActivation(s string) (dots.ActivationType, error) {
	var at dots.ActivationType
	if err := at.UnmarshalJSON([]byte(strconv.Quote(s))); err != nil || at < 1 || at > 3 || s != at.String() {
		return 0, fmt.Errorf("activation-type %q: use %s", s, activationWords)
	}
	return at, nil
}

// parseACLControl parses --acl NAME=ACTIVATION into an RFC 9133 acl-list
// entry (acl-name, activation-type).
func parseACLControl(s string) (dots.ACLControl, error) {
	name, word, ok := strings.Cut(s, "=")
	if !ok || name == "" || word == "" {
		return dots.ACLControl{}, fmt.Errorf("--acl %q: use NAME=ACTIVATION, e.g. --acl an-accept-list=deactivate (ACTIVATION is %s)", s, activationWords)
	}
	at, err := parseActivation(word)
	if err != nil {
		return dots.ACLControl{}, fmt.Errorf("--acl %q: %w", s, err)
	}
	return dots.ACLControl{ACLName: name, ActivationType: &at}, nil
}
