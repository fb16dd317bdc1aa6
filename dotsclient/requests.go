package dotsclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"

	"github.com/levee-dots/levee/dots"
)

const (
	wellKnown    = "/.well-known/dots"
	hbPath       = wellKnown + "/hb"
	mitigatePath = wellKnown + "/mitigate"
	configPath   = wellKnown + "/config"
)

func (c *Client) mitigationPath(mid *uint32) string { return mitigationPathOf(c.CUID(), mid) }

func mitigationPathOf(cuid string, mid *uint32) string {
	p := mitigatePath + "/cuid=" + cuid
	if mid != nil {
		p += fmt.Sprintf("/mid=%d", *mid)
	}
	return p
}

// request describes one CoAP exchange.
type request struct {
	code codes.Code
	path string // set by do for /mitigate (mitigate true)
	// mitigate: a /mitigate request for mid (nil: all): its path names the
	// client's current cuid, and a cuid collision makes a new one.
	mitigate bool
	mid      *uint32
	queries  []string
	body     *dots.Message
	nonConf  bool // Non-confirmable over DTLS (mitigation requests, heartbeats)
	ifMatch  bool // empty If-Match (efficacy update)
}

// do sends a request and returns the response. A /mitigate request that
// meets a cuid collision is sent once more with a new cuid (cuid.go).
func (c *Client) do(ctx context.Context, rq request) (*Response, error) {
	if !rq.mitigate {
		return c.send(ctx, rq)
	}
	cuid := c.CUID()
	rq.path = mitigationPathOf(cuid, rq.mid)
	resp, err := c.send(ctx, rq)
	if err != nil || c.cfg.KeepCUID || !IsCUIDCollision(resp) {
		return resp, err
	}
	if cuid, err = c.renewCUID(cuid); err != nil {
		return nil, err
	}
	rq.path = mitigationPathOf(cuid, rq.mid)
	return c.send(ctx, rq)
}

// send sends a request and returns the response. Non-confirmable requests
// over DTLS are repeated at the pace nonInterval gives until an answer
// arrives, ctx ends or nonRepeatWindow has passed; without backoff, which
// under loss would leave fewer tries in the seconds that matter.
func (c *Client) send(ctx context.Context, rq request) (*Response, error) {
	var payload []byte
	if rq.body != nil {
		b, err := dots.Encode(rq.body)
		if err != nil {
			return nil, err
		}
		payload = b
	}
	if !rq.nonConf || c.transport != "dtls" {
		// Confirmable, or over TLS: the transport retransmits.
		resp, err := c.once(ctx, rq, payload)
		if err != nil {
			return nil, fmt.Errorf("dotsclient: %s %s: %w", rq.code, rq.path, err)
		}
		return resp, nil
	}
	deadline := time.Now().Add(nonRepeatWindow)
	for attempt := 1; ; attempt++ {
		wait := c.nonWait()
		actx, cancel := context.WithTimeout(ctx, wait)
		sent := time.Now()
		resp, err := c.once(actx, rq, payload)
		cancel()
		if err == nil && attempt == 1 {
			c.sampleRTT(time.Since(sent)) // Karn: never from a repeat, whose answer may be the first try's
		}
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("dotsclient: %s %s: %w", rq.code, rq.path, err)
			}
			return resp, nil
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("dotsclient: %s %s: %w", rq.code, rq.path, err)
		}
	}
}

// NON request pacing (RFC 9132 §4.4.1: repeated until answered). Without
// an RTT estimate at most one NON request per 3 s; with one, RFC 8085
// §3.1.3 allows one datagram per RTT, and a repeat goes out after twice
// the smoothed RTT but never sooner than nonMinRepeat. Under 50% loss each
// way a try gets through with a chance of 1 in 4, so the number of tries
// in the first seconds is what decides whether a mitigation request is
// acknowledged in time.
const (
	nonRepeat       = 3 * time.Second
	nonMinRepeat    = 500 * time.Millisecond
	nonRepeatWindow = time.Minute // repeats stop after this, whatever the context allows
)

// nonInterval is the wait before repeating a NON request, given the
// smoothed RTT (0: none measured).
func nonInterval(srtt time.Duration) time.Duration {
	if srtt <= 0 {
		return nonRepeat
	}
	return min(max(2*srtt, nonMinRepeat), nonRepeat)
}

// sampleRTT folds one round trip into the smoothed RTT (RFC 6298 §2: the
// first sample is taken as is, later ones with weight 1/8).
func (c *Client) sampleRTT(r time.Duration) {
	for {
		old := c.srtt.Load()
		next := int64(r)
		if old != 0 {
			next = old + (int64(r)-old)/8
		}
		if c.srtt.CompareAndSwap(old, next) {
			return
		}
	}
}

func (c *Client) once(ctx context.Context, rq request, payload []byte) (*Response, error) {
	var req *pool.Message
	var err error
	switch rq.code {
	case codes.GET:
		req, err = c.conn.NewGetRequest(ctx, rq.path)
	case codes.DELETE:
		req, err = c.conn.NewDeleteRequest(ctx, rq.path)
	default:
		req, err = c.conn.NewPutRequest(ctx, rq.path, message.MediaType(dots.ContentFormat), bytes.NewReader(payload))
	}
	if err != nil {
		return nil, err
	}
	defer c.conn.ReleaseMessage(req)
	if payload == nil && rq.code == codes.PUT {
		req.SetBody(nil)
	}
	for _, q := range rq.queries {
		req.AddQuery(q)
	}
	if rq.ifMatch {
		req.AddOptionBytes(message.IfMatch, []byte{})
	}
	if rq.nonConf && c.transport == "dtls" {
		req.SetType(message.NonConfirmable)
	}
	resp, err := c.conn.Do(req)
	if err != nil {
		return nil, err
	}
	defer c.conn.ReleaseMessage(resp)
	return parseResponse(resp)
}

func parseResponse(m *pool.Message) (*Response, error) {
	r := &Response{Code: dots.Code(m.Code())}
	if v, err := m.GetOptionUint32(message.MaxAge); err == nil {
		r.MaxAge = &v
	}
	if v, err := m.GetOptionBytes(message.ETag); err == nil {
		r.ETag = append([]byte(nil), v...)
	}
	b, err := m.ReadBody()
	if err != nil && !errors.Is(err, message.ErrOptionNotFound) {
		return nil, fmt.Errorf("reading response body: %w", err)
	}
	if len(b) == 0 {
		return r, nil
	}
	cf, cfErr := m.ContentFormat()
	if cfErr == nil && cf == message.MediaType(dots.ContentFormat) {
		body, err := dots.Decode(b)
		if err != nil {
			return nil, fmt.Errorf("server sent an undecodable DOTS body: %w", err)
		}
		r.Body = body
		return r, nil
	}
	r.Diag = string(b)
	return r, nil
}

// Mitigate sends a mitigation request (create or refresh) for mid.
func (c *Client) Mitigate(ctx context.Context, mid uint32, scope dots.Scope) (*Response, error) {
	return c.do(ctx, request{code: codes.PUT, mitigate: true, mid: &mid, nonConf: true,
		body: &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{scope}}}})
}

// Efficacy sends an efficacy update: the original scope with attack-status
// and an empty If-Match (RFC 9132 §4.4.3), without the acl-list the
// original may have carried (an efficacy update never does, RFC 9133 §3.2).
func (c *Client) Efficacy(ctx context.Context, mid uint32, scope dots.Scope, status dots.AttackStatus) (*Response, error) {
	scope.AttackStatus = &status
	scope.ACLList = nil
	return c.do(ctx, request{code: codes.PUT, mitigate: true, mid: &mid, nonConf: true, ifMatch: true,
		body: &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{scope}}}})
}

// Status retrieves one (mid set) or all mitigation requests; content is
// the 'c' query: "c", "n" or "a" ("" for the default).
func (c *Client) Status(ctx context.Context, mid *uint32, content string) (*Response, error) {
	rq := request{code: codes.GET, mitigate: true, mid: mid, nonConf: true}
	if content != "" {
		rq.queries = []string{"c=" + content}
	}
	return c.do(ctx, rq)
}

// Withdraw deletes a mitigation request (always 2.02).
func (c *Client) Withdraw(ctx context.Context, mid uint32) (*Response, error) {
	return c.do(ctx, request{code: codes.DELETE, mitigate: true, mid: &mid, nonConf: true})
}

// GetConfig retrieves the session configuration (sid nil: limits and current values).
func (c *Client) GetConfig(ctx context.Context, sid *uint32) (*Response, error) {
	p := configPath
	if sid != nil {
		p += fmt.Sprintf("/sid=%d", *sid)
	}
	return c.do(ctx, request{code: codes.GET, path: p})
}

// PutConfig sets the session configuration under sid.
func (c *Client) PutConfig(ctx context.Context, sid uint32, sc *dots.SignalConfig) (*Response, error) {
	return c.do(ctx, request{code: codes.PUT, path: fmt.Sprintf("%s/sid=%d", configPath, sid), body: &dots.Message{SignalConfig: sc}})
}

// DeleteConfig resets the session configuration to the defaults.
func (c *Client) DeleteConfig(ctx context.Context) (*Response, error) {
	return c.do(ctx, request{code: codes.DELETE, path: configPath})
}

// Heartbeat sends one heartbeat (RFC 9132 §4.7).
func (c *Client) Heartbeat(ctx context.Context, peerHBStatus bool) (*Response, error) {
	return c.HeartbeatWithin(ctx, peerHBStatus, 5*time.Second)
}

// Observe subscribes to one (mid set) or all mitigation requests; fn gets
// the first answer and every notification. The returned func cancels.
func (c *Client) Observe(ctx context.Context, mid *uint32, content string, fn func(*Response)) (func(), error) {
	var opts []message.Option
	if content != "" {
		opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte("c=" + content)})
	}
	obs, err := c.conn.Observe(ctx, c.mitigationPath(mid), func(m *pool.Message) {
		r, err := parseResponse(m)
		if err != nil {
			c.log.Warn("bad notification", "err", err)
			return
		}
		fn(r)
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("dotsclient: observe: %w", err)
	}
	return func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = obs.Cancel(cctx)
	}, nil
}
