// Package agent is the HTTPS API of a Levee scrubbing node (scrubd): dotsd,
// the DOTS server, hands the node the complete desired filter state and
// reads its counters (RFC 8811 §2: the server passes mitigations to a
// mitigator; RFC 9132 §4.4.2: what was dropped is reported back as
// bytes-dropped and pkts-dropped). The handler drives a scrub.Node and
// knows nothing of nftables; cmd/scrubd serves it with mutual TLS.
//
// The API (see api.md):
//
//	PUT /v1/state      the complete scrub.Desired as JSON: 204, or 4xx/5xx with {"error": "..."}
//	GET /v1/state      {"boot", "generation", "state"}
//	GET /v1/counters   {"boot", "generation", "mitigations", "rules"}
//	GET /v1/health     {"boot", "generation", "status", "error"}
//
// boot is random per process start and generation counts the accepted
// changes of state since then, so a caller tells a restart of scrubd (or
// another writer) and sends its state again.
package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/levee-dots/levee/scrub"
)

// Response headers of a successful PUT /v1/state.
const (
	HeaderBoot       = "Levee-Boot"
	HeaderGeneration = "Levee-Generation"
)

// DefaultSetTimeout bounds one Node.Set or Node.Counters call.
const DefaultSetTimeout = 30 * time.Second

// Options configure a Handler.
type Options struct {
	Node   scrub.Node   // required
	Logger *slog.Logger // nil: discard
	Bounds Bounds
	// Boot identifies this process start; empty: random.
	Boot string
	// Timeout bounds each call of the node (default DefaultSetTimeout).
	Timeout time.Duration
	// Authorize, if set, is asked for every request after TLS verified the
	// client; an error refuses the request with 403 and the error's text.
	Authorize func(r *http.Request) error
}

// Handler serves the API. It is safe for concurrent use; calls of the node
// are serialized.
type Handler struct {
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux

	mu      sync.Mutex // serializes node calls and guards below
	state   scrub.Desired
	gen     uint64
	lastErr error
}

// New returns the handler over opts.Node.
func New(opts Options) (*Handler, error) {
	if opts.Node == nil {
		return nil, errors.New("agent: no data plane (Options.Node is nil)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Boot == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		opts.Boot = hex.EncodeToString(b[:])
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultSetTimeout
	}
	opts.Bounds = opts.Bounds.normalized()
	h := &Handler{opts: opts, log: opts.Logger, mux: http.NewServeMux(), state: scrub.Desired{Mitigations: []scrub.Mitigation{}}}
	h.mux.HandleFunc("PUT /v1/state", h.putState)
	h.mux.HandleFunc("GET /v1/state", h.getState)
	h.mux.HandleFunc("GET /v1/counters", h.getCounters)
	h.mux.HandleFunc("GET /v1/health", h.getHealth)
	return h, nil
}

// Boot returns this handler's boot id.
func (h *Handler) Boot() string { return h.opts.Boot }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.opts.Authorize != nil {
		if err := h.opts.Authorize(r); err != nil {
			h.log.Warn("request refused", "peer", r.RemoteAddr, "err", err)
			writeError(w, http.StatusForbidden, err.Error())
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

// StateResponse is the body of GET /v1/state.
type StateResponse struct {
	Boot       string        `json:"boot"`
	Generation uint64        `json:"generation"`
	State      scrub.Desired `json:"state"`
}

// CountersResponse is the body of GET /v1/counters.
type CountersResponse struct {
	Boot       string `json:"boot"`
	Generation uint64 `json:"generation"`
	scrub.Counters
}

// HealthResponse is the body of GET /v1/health.
type HealthResponse struct {
	Boot       string `json:"boot"`
	Generation uint64 `json:"generation"`
	Status     string `json:"status"`          // "ok", or "degraded" after a failed Set
	Error      string `json:"error,omitempty"` // the last Set's failure
}

// ErrorResponse is the body of every refusal.
type ErrorResponse struct {
	Error string `json:"error"`
}

func (h *Handler) putState(w http.ResponseWriter, r *http.Request) {
	d, status, err := h.decode(w, r)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	if err := h.opts.Bounds.Validate(d); err != nil {
		msg := err.Error()
		if fe := (*scrub.FieldError)(nil); errors.As(err, &fe) {
			msg = fe.Detail()
		}
		writeError(w, http.StatusUnprocessableEntity, msg)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !reflect.DeepEqual(normalize(d), normalize(h.state)) || h.lastErr != nil {
		ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
		err := h.opts.Node.Set(ctx, d)
		cancel()
		if err != nil {
			h.lastErr = err
			h.log.Error("set failed", "peer", r.RemoteAddr, "mitigations", len(d.Mitigations), "err", err)
			status := http.StatusInternalServerError
			if errors.Is(err, scrub.ErrInvalid) {
				status = http.StatusUnprocessableEntity // beyond the data plane's own bounds
			}
			writeError(w, status, "data plane: "+err.Error())
			return
		}
		h.lastErr = nil
		h.state = normalize(d)
		h.gen++
		h.log.Info("state set", "peer", r.RemoteAddr, "mitigations", len(d.Mitigations), "generation", h.gen)
	}
	w.Header().Set(HeaderBoot, h.opts.Boot)
	w.Header().Set(HeaderGeneration, strconv.FormatUint(h.gen, 10))
	w.WriteHeader(http.StatusNoContent)
}

// decode reads a Desired from r: JSON, no unknown field, one value, within
// the body bound.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request) (scrub.Desired, int, error) {
	var d scrub.Desired
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
		return d, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q: send application/json", ct)
	}
	body := http.MaxBytesReader(w, r.Body, h.opts.Bounds.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return d, http.StatusRequestEntityTooLarge, fmt.Errorf("body is larger than %d bytes", mbe.Limit)
		case errors.Is(err, io.EOF):
			return d, http.StatusBadRequest, errors.New("empty body: send the complete desired state as JSON")
		}
		return d, http.StatusBadRequest, fmt.Errorf("body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return d, http.StatusBadRequest, errors.New("body: more than one JSON value")
	}
	return d, 0, nil
}

// normalize makes nil and empty lists of d compare equal.
func normalize(d scrub.Desired) scrub.Desired {
	out := scrub.Desired{Mitigations: make([]scrub.Mitigation, 0, len(d.Mitigations))}
	for _, m := range d.Mitigations {
		if len(m.Rules) == 0 {
			m.Rules = nil
		}
		rules := make([]scrub.Rule, 0, len(m.Rules))
		for _, r := range m.Rules {
			if r.Action == "" {
				r.Action = scrub.ActionDrop
			}
			if len(r.Sources) == 0 {
				r.Sources = nil
			}
			if len(r.Protocols) == 0 {
				r.Protocols = nil
			}
			if len(r.SrcPorts) == 0 {
				r.SrcPorts = nil
			}
			if len(r.DstPorts) == 0 {
				r.DstPorts = nil
			}
			rules = append(rules, r)
		}
		m.Rules = rules
		for i, p := range m.Targets {
			m.Targets[i] = p.Masked()
		}
		out.Mitigations = append(out.Mitigations, m)
	}
	if len(d.ACLs) > 0 {
		out.ACLs = d.ACLs
	}
	return out
}

func (h *Handler) getState(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	resp := StateResponse{Boot: h.opts.Boot, Generation: h.gen, State: h.state}
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func (h *Handler) getCounters(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	c, err := h.opts.Node.Counters(ctx)
	cancel()
	gen := h.gen
	h.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "data plane: "+err.Error())
		return
	}
	if c.Mitigations == nil {
		c.Mitigations = map[string]scrub.Count{}
	}
	if c.Rules == nil {
		c.Rules = map[string]map[string]scrub.Count{}
	}
	writeJSON(w, http.StatusOK, CountersResponse{Boot: h.opts.Boot, Generation: gen, Counters: c})
}

func (h *Handler) getHealth(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	resp := HealthResponse{Boot: h.opts.Boot, Generation: h.gen, Status: "ok"}
	if h.lastErr != nil {
		resp.Status, resp.Error = "degraded", h.lastErr.Error()
	}
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ErrorResponse{Error: msg})
}
