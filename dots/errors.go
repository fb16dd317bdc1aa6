package dots

import (
	"errors"
	"fmt"
)

// Code is a CoAP response code (RFC 7252 §12.1.2) as class<<5 | detail. It
// has the numeric value of go-coap's codes.Code, so transports convert it
// with a plain type conversion.
type Code uint8

// Response codes used by the DOTS signal channel (RFC 9132 §9).
const (
	Created             Code = 0x41 // 2.01
	Deleted             Code = 0x42 // 2.02
	Valid               Code = 0x43 // 2.03
	Changed             Code = 0x44 // 2.04
	Content             Code = 0x45 // 2.05
	BadRequest          Code = 0x80 // 4.00
	Unauthorized        Code = 0x81 // 4.01
	BadOption           Code = 0x82 // 4.02
	Forbidden           Code = 0x83 // 4.03
	NotFound            Code = 0x84 // 4.04
	MethodNotAllowed    Code = 0x85 // 4.05
	Conflict            Code = 0x89 // 4.09
	PreconditionFailed  Code = 0x8c // 4.12
	EntityTooLarge      Code = 0x8d // 4.13
	UnsupportedFormat   Code = 0x8f // 4.15
	UnprocessableEntity Code = 0x96 // 4.22
	InternalServerError Code = 0xa0 // 5.00
	ServiceUnavailable  Code = 0xa3 // 5.03
	HopLimitReached     Code = 0xa8 // 5.08
)

// String renders the code in dotted form, e.g. "4.03".
func (c Code) String() string { return fmt.Sprintf("%d.%02d", uint8(c)>>5, uint8(c)&0x1f) }

// Error is a protocol error: the CoAP code to answer with, a plain-text
// diagnostic for the payload (RFC 9132 §9: every 4.xx/5.xx carries one), an
// optional DOTS body (4.09 conflict-information) and the underlying cause.
type Error struct {
	Code Code
	Diag string
	Body *Message
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s %s: %v", e.Code, e.Diag, e.Err)
	}
	return fmt.Sprintf("%s %s", e.Code, e.Diag)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted diagnostic.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Diag: fmt.Sprintf(format, args...)}
}

// CodeOf returns the CoAP code carried by err, or 5.00 when err is not a
// protocol error.
func CodeOf(err error) Code {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return InternalServerError
}

// Sentinel wire errors; Decode wraps them in an *Error with code 4.00.
var (
	ErrEmpty          = errors.New("empty payload")
	ErrTrailingData   = errors.New("trailing data after the CBOR item")
	ErrUnknownKey     = errors.New("unknown comprehension-required key")
	ErrNotMap         = errors.New("DOTS body is not a CBOR map")
	ErrBadDecimal     = errors.New("decimal64 must be CBOR tag 4 [exponent, mantissa]")
	ErrBadMapKeyType  = errors.New("map key is not an unsigned integer")
	ErrUnexpectedBody = errors.New("unexpected top-level container")
)
