package dotsclient

import (
	"context"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/levee-dots/levee/dots"
)

// HeartbeatWithin is Heartbeat waiting up to wait for the answer, where
// Heartbeat waits 5 s: over TCP a client waits up to heartbeat-interval
// before it concludes that the heartbeat went unanswered (RFC 9132 §4.7).
func (c *Client) HeartbeatWithin(ctx context.Context, peerHBStatus bool, wait time.Duration) (*Response, error) {
	body := &dots.Message{Heartbeat: &dots.Heartbeat{PeerHBStatus: &peerHBStatus}}
	actx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	sent := time.Now()
	r, err := c.once(actx, request{code: codes.PUT, path: hbPath, nonConf: true, body: body}, dots.MustEncode(body))
	if err == nil {
		c.sampleRTT(time.Since(sent)) // a heartbeat is never repeated: its answer is its own
	}
	return r, err
}
