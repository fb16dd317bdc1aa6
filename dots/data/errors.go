package data

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Error tags of RFC 8040 §7 used by the data channel.
const (
	TagInvalidValue     = "invalid-value"     // 400 (404 for a missing resource)
	TagMalformedMessage = "malformed-message" // 400
	TagMissingAttribute = "missing-attribute" // 400
	TagBadAttribute     = "bad-attribute"     // 400
	TagUnknownElement   = "unknown-element"   // 400
	TagBadElement       = "bad-element"       // 400
	TagTooBig           = "too-big"           // 413
	TagAccessDenied     = "access-denied"     // 403
	TagResourceDenied   = "resource-denied"   // 409
	TagDataExists       = "data-exists"       // 409
	TagDataMissing      = "data-missing"      // 409
	TagOperationNotSup  = "operation-not-supported"
	TagOperationFailed  = "operation-failed"
)

// Error types of RFC 8040 §7.1.
const (
	TypeTransport   = "transport"
	TypeRPC         = "rpc"
	TypeProtocol    = "protocol"
	TypeApplication = "application"
)

// Error is a data-channel protocol error: the HTTP status to answer with and
// the fields of one RFC 8040 error entry. Message is always set (every error
// response carries a diagnostic).
type Error struct {
	Status  int    // HTTP status code
	Type    string // error-type
	Tag     string // error-tag
	AppTag  string // error-app-tag, optional
	Path    string // error-path, optional (an instance identifier)
	Message string // error-message
	Err     error  // cause, optional
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%d %s", e.Status, e.Tag)
	if e.Path != "" {
		s += " at " + e.Path
	}
	s += ": " + e.Message
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given status and tag and a formatted
// message; the error-type is protocol for 400 and 413, application otherwise.
func Errorf(status int, tag, format string, args ...any) *Error {
	typ := TypeApplication
	if status == 400 || status == 413 {
		typ = TypeProtocol
	}
	return &Error{Status: status, Type: typ, Tag: tag, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as an *Error, or a 500 operation-failed one.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Status: 500, Type: TypeApplication, Tag: TagOperationFailed, Message: err.Error(), Err: err}
}

// ErrorEntry is one entry of an RFC 8040 errors body.
type ErrorEntry struct {
	ErrorType    string `json:"error-type"`
	ErrorTag     string `json:"error-tag"`
	ErrorAppTag  string `json:"error-app-tag,omitempty"`
	ErrorPath    string `json:"error-path,omitempty"`
	ErrorMessage string `json:"error-message,omitempty"`
}

// Errors is the body of an error response (RFC 8040 §7.1, module
// ietf-restconf).
type Errors struct {
	Errors struct {
		Error []ErrorEntry `json:"error"`
	} `json:"ietf-restconf:errors"`
}

// Body renders e as an RFC 8040 errors body.
func (e *Error) Body() []byte {
	var b Errors
	b.Errors.Error = []ErrorEntry{{ErrorType: e.Type, ErrorTag: e.Tag, ErrorAppTag: e.AppTag, ErrorPath: e.Path, ErrorMessage: e.Message}}
	out, _ := json.Marshal(b) // cannot fail: strings only
	return out
}

// DecodeErrors parses an RFC 8040 errors body (what a client reads from an
// error response).
func DecodeErrors(b []byte) (*Errors, error) {
	var e Errors
	if err := decodeTop(b, map[string]any{"ietf-restconf:errors": &e.Errors}, true); err != nil {
		return nil, err
	}
	if len(e.Errors.Error) == 0 {
		return nil, Errorf(400, TagMissingAttribute, "errors body has no error entry")
	}
	return &e, nil
}
