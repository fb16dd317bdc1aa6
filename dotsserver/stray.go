package dotsserver

import (
	"context"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options/config"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Responses that answer no request of the server (RFC 7252 §5.3.2).
//
// The server's own requests are its heartbeats (liveness.go); go-coap
// hands their answers to the waiting exchange by token. Any other message
// with a response code reaches the router: a late answer to a heartbeat
// given up, or a client answering one of the server's responses (a late
// answer to a request the client gave up on and repeated as a new one,
// RFC 9132 §4.4.1). Such a response is rejected and
// never answered with a response (§5.3.2: "the response is rejected",
// Sections 4.2 and 4.3): a Confirmable one with a Reset, a Non-confirmable
// one or one in an Acknowledgement silently; over TLS, which has no Reset
// (RFC 8323), silently. Answering it with an error response instead (as
// the router would, 4.04) starts an endless exchange with a client that
// does the same to unexpected responses: a client of another domain would
// then share the server with thousands of such messages a second.

// strayKey marks, in the context of the session's answer, that the
// message answered is a response no exchange of the server claimed. (The
// received message itself is not marked: one that an exchange claims is
// the exchange's once handed over.)
type strayKey struct{}

// rejectStray handles a response that reached the router: it answers
// nothing itself, and marks a Confirmable one over DTLS for the Reset that
// rejectStrayCON sends.
func (s *Server) rejectStray(w mux.ResponseWriter, r *mux.Message) {
	s.log.Debug("response to no request of the server ignored", "remote", w.Conn().RemoteAddr().String(),
		"code", r.Code().String(), "type", r.Type().String())
	if _, udp := w.Conn().(*udpClient.Conn); udp && r.Type() == message.Confirmable {
		m := w.Message()
		m.SetContext(context.WithValue(m.Context(), strayKey{}, true))
	}
}

// rejectStrayCON wraps go-coap's handling of a received Confirmable
// response over DTLS: when the router saw it (rejectStray), the session
// sends a Reset with its Message ID (RFC 7252 §4.2) instead of what
// go-coap would send, an Acknowledgement. Other messages pass through.
func rejectStrayCON(req *pool.Message, h config.HandlerFunc[*udpClient.Conn]) config.HandlerFunc[*udpClient.Conn] {
	if isRequest(req.Code()) || req.Code() == codes.Empty || req.Type() != message.Confirmable {
		return h
	}
	mid := req.MessageID()
	return func(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message) {
		h(w, r)
		m := w.Message()
		if m.Context().Value(strayKey{}) == nil {
			return
		}
		m.ResetOptionsTo(nil)
		m.SetBody(nil)
		m.SetToken(nil)
		m.SetCode(codes.Empty)
		m.SetType(message.Reset)
		m.SetMessageID(mid)
	}
}
