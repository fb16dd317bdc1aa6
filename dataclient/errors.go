package dataclient

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/levee-dots/levee/dots/data"
)

// Error is a RESTCONF error answer: the HTTP status and the entries of its
// RFC 8040 §7.1 errors body (none when the server sent no such body).
type Error struct {
	Status  int
	Entries []data.ErrorEntry
	// Body is the answer as it came when it was not an RFC 8040 errors body.
	Body string
}

func parseError(status int, b []byte) *Error {
	e := &Error{Status: status}
	// Read leniently: an error-info or a member this client does not know
	// must not hide the message.
	var eb data.Errors
	if json.Unmarshal(b, &eb) == nil && len(eb.Errors.Error) > 0 {
		e.Entries = eb.Errors.Error
		return e
	}
	e.Body = strings.TrimSpace(string(b))
	if len(e.Body) > 200 {
		e.Body = e.Body[:200] + "..."
	}
	return e
}

// Error renders the status and each entry as
// "409 resource-denied: MESSAGE (error-app-tag T, error-path P)".
func (e *Error) Error() string {
	if len(e.Entries) == 0 {
		s := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
		if e.Body != "" {
			s += ": " + e.Body
		}
		return s
	}
	parts := make([]string, len(e.Entries))
	for i, en := range e.Entries {
		s := en.ErrorTag
		if s == "" {
			s = http.StatusText(e.Status)
		}
		if en.ErrorMessage != "" {
			s += ": " + en.ErrorMessage
		}
		var detail []string
		if en.ErrorAppTag != "" {
			detail = append(detail, "error-app-tag "+en.ErrorAppTag)
		}
		if en.ErrorPath != "" {
			detail = append(detail, "error-path "+en.ErrorPath)
		}
		if len(detail) > 0 {
			s += " (" + strings.Join(detail, ", ") + ")"
		}
		parts[i] = s
	}
	return fmt.Sprintf("%d %s", e.Status, strings.Join(parts, "; "))
}

// Tag is the error-tag of the first entry, or "".
func (e *Error) Tag() string {
	if len(e.Entries) == 0 {
		return ""
	}
	return e.Entries[0].ErrorTag
}
