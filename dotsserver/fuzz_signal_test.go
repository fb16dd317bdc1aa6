package dotsserver_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	tcpCoder "github.com/plgd-dev/go-coap/v3/tcp/coder"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/service"
)

// signalSeed is one request of the seed corpus. In path, {cuid} stands for
// the cuid of the session's client; segments are separated by '/', query
// items by '&'. Negative cf, block1 and observe leave the option out.
type signalSeed struct {
	code    codes.Code
	path    string
	query   string
	cf      int32
	block1  int64
	observe int32
	token   []byte
	payload []byte
}

func goldenBody(f *testing.F, name string) []byte {
	f.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "dots", "testdata", "golden", name+".hex"))
	if err != nil {
		f.Fatal(err)
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		f.Fatalf("%s: %v", name, err)
	}
	return b
}

func encodeSeed(f *testing.F, m *dots.Message) []byte {
	f.Helper()
	b, err := dots.Encode(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func signalSeeds(f *testing.F) []signalSeed {
	const mit = ".well-known/dots/mitigate/cuid={cuid}"
	const none = -1
	put := encodeSeed(f, &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{scope("203.0.113.7/32", 3600)}}})
	foreign := encodeSeed(f, &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{scope("198.51.100.1/32", 3600)}}})
	fig07 := goldenBody(f, "fig07_mitigation_request")
	efficacy := goldenBody(f, "fig16_efficacy_update")
	configPut := goldenBody(f, "fig23_config_put")
	hb := goldenBody(f, "fig27_heartbeat")
	cf := int32(dots.ContentFormat)
	return []signalSeed{
		{codes.PUT, mit + "/mid=123", "", cf, none, none, []byte{1}, fig07},
		{codes.PUT, mit + "/mid=7", "", cf, none, none, []byte{2}, put},
		{codes.PUT, mit + "/mid=7", "", cf, none, none, []byte{3}, efficacy},
		{codes.PUT, mit + "/mid=8", "", cf, none, none, []byte{4}, foreign},
		{codes.PUT, mit + "/mid=9", "", cf, 0<<4 | 8, none, []byte{5}, put[:16]},
		{codes.PUT, mit + "/mid=9", "", cf, 1 << 4, none, []byte{6}, put[16:]},
		{codes.PUT, mit + "/mid=10", "", cf, 5<<4 | 2, none, []byte{7}, put},
		{codes.PUT, mit + "/mid=11", "", 50, none, none, []byte{8}, put},
		{codes.PUT, mit + "/mid=12", "", cf, none, none, nil, []byte{0xa1, 0x01}},
		{codes.PUT, mit + "/mid=x", "", cf, none, none, nil, put},
		{codes.PUT, mit + "/mid=13/mid=14", "", cf, none, none, nil, put},
		{codes.PUT, ".well-known/dots/mitigate/cuid=someone-else/mid=15", "", cf, none, none, nil, put},
		{codes.GET, mit, "", none, none, none, []byte{9}, nil},
		{codes.GET, mit + "/mid=123", "c=c", none, none, 0, []byte{10}, nil},
		{codes.GET, mit, "c=n&x=1", none, none, 1, nil, nil},
		{codes.GET, mit + "/mid=4294967296", "", none, none, none, nil, nil},
		{codes.DELETE, mit + "/mid=123", "", none, none, none, []byte{11}, nil},
		{codes.DELETE, mit, "", none, none, none, nil, nil},
		{codes.POST, mit + "/mid=7", "", cf, none, none, nil, put},
		{codes.GET, ".well-known/dots/config", "", none, none, none, []byte{12}, nil},
		{codes.PUT, ".well-known/dots/config/sid=123", "", cf, none, none, []byte{13}, configPut},
		{codes.PUT, ".well-known/dots/config/sid=124", "", cf, none, none, nil, []byte{0xa0}},
		{codes.DELETE, ".well-known/dots/config", "", none, none, none, nil, nil},
		{codes.PUT, ".well-known/dots/hb", "", cf, none, none, []byte{14}, hb},
		{codes.PUT, ".well-known/dots/hb/cuid={cuid}", "", cf, none, none, nil, hb},
		{codes.GET, ".well-known/dots/hb", "", none, none, none, nil, nil},
		{codes.GET, ".well-known/core", "", none, none, none, nil, nil},
		{codes.GET, "", "", none, none, none, nil, nil},
		{codes.PUT, ".well-known/dots/unknown", "", cf, none, none, nil, []byte("not cbor")},
	}
}

// fuzzSession is the one server and TLS session a fuzz process sends to.
type fuzzSession struct {
	e  *env
	rc *rawConn
}

var fuzzSess *fuzzSession

// signalSession starts the server on first use; its clock stands still,
// so nothing expires between two looks at the service's state, and its
// rate limit is the highest the server accepts.
func signalSession(f *testing.F) *fuzzSession {
	if fuzzSess != nil {
		return fuzzSess
	}
	clock := dotstest.NewClock()
	e := newEnv(f, "127.0.0.1:0", func(o *dotsserver.Options) {
		clock.Install(o)
		o.RateLimit = dotsserver.RateLimit{RequestsPerSecond: dotsserver.MaxRequestsPerSecond, Burst: dotsserver.MaxRequestBurst}
	})
	fuzzSess = &fuzzSession{e: e, rc: dialRaw(f, e, "alpha", "tls")}
	f.Cleanup(func() { fuzzSess = nil })
	return fuzzSess
}

// state is what a request may change: the mitigations of every client and
// the session configuration of the session's client.
func (fs *fuzzSession) state(t *testing.T) string {
	svc := fs.e.Srv.Service()
	m, err := json.Marshal(svc.AllMitigations())
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(svc.SessionConfig(service.Client{CUID: fs.rc.cuid}))
	if err != nil {
		t.Fatal(err)
	}
	return string(m) + "\n" + string(c)
}

func (fs *fuzzSession) message(s signalSeed, tok message.Token) message.Message {
	var opts message.Options
	if s.observe >= 0 {
		opts = append(opts, uintOpt(message.Observe, uint32(s.observe)))
	}
	if s.path != "" {
		for _, seg := range strings.Split(strings.ReplaceAll(s.path, "{cuid}", fs.rc.cuid), "/") {
			opts = append(opts, message.Option{ID: message.URIPath, Value: []byte(seg)})
		}
	}
	if s.cf >= 0 {
		opts = append(opts, uintOpt(message.ContentFormat, uint32(s.cf)))
	}
	if s.query != "" {
		for _, q := range strings.Split(s.query, "&") {
			opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte(q)})
		}
	}
	if s.block1 >= 0 {
		opts = append(opts, uintOpt(message.Block1, uint32(s.block1)))
	}
	return message.Message{Code: s.code, Token: tok, Options: opts, Payload: s.payload}
}

// answer returns the next message carrying tok, answering the server's
// heartbeats on the way.
func (fs *fuzzSession) answer(t *testing.T, tok message.Token) message.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := fs.rc.read(deadline)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("no answer to the request within 10 s")
		}
		if err != nil {
			t.Fatalf("the session ended without an answer: %v", err)
		}
		if bytes.Equal(m.Token, tok) {
			return m
		}
		if m.Code == codes.PUT {
			fs.rc.send(message.Message{Code: codes.Changed, Token: m.Token})
		}
	}
}

// describe names a request in failures: method, path and options.
func describe(m message.Message) string {
	var b strings.Builder
	b.WriteString(m.Code.String())
	for _, o := range m.Options {
		if o.ID == message.URIPath {
			b.WriteString(" /" + string(o.Value))
		} else {
			fmt.Fprintf(&b, " %v=%x", o.ID, o.Value)
		}
	}
	fmt.Fprintf(&b, " token=%x payload=%d bytes", m.Token, len(m.Payload))
	return b.String()
}

// FuzzSignalRequest sends one CoAP request, built from fuzzed method,
// Uri-Path, Uri-Query, Content-Format, Block1, Observe, token and payload,
// to a real server over a TLS session, so it passes go-coap's block-wise
// and Observe layers, the server's request monitor and its handlers. Every
// request is answered with a response code, every 4.xx and 5.xx carries a
// diagnostic payload, and a request answered 4.xx changes nothing in the
// service.
func FuzzSignalRequest(f *testing.F) {
	for _, s := range signalSeeds(f) {
		f.Add(uint8(s.code), s.path, s.query, s.cf, s.block1, s.observe, s.token, s.payload)
	}
	fs := signalSession(f)
	f.Fuzz(func(t *testing.T, code uint8, path, query string, cf int32, block1 int64, observe int32, token, payload []byte) {
		fs.rc.t = t
		// request methods only, codes 0.01-0.07 (Empty is no request, and
		// signals are not requests and may end the session)
		method := codes.Code(code % 8)
		if method == codes.Empty {
			method = codes.GET
		}
		req := signalSeed{code: method, path: path, query: query, cf: cf, block1: block1, observe: observe, payload: payload}
		if len(token) > 4 {
			token = token[:4]
		}
		// the suffix keeps the token unique, so an answer is never taken
		// for a notification of an earlier Observe registration
		tok := append(append(message.Token{}, token...), fs.rc.token()...)
		m := fs.message(req, tok)
		if _, err := encode(tcpCoder.DefaultCoder, m); err != nil {
			t.Skip("not encodable as CoAP:", err)
		}
		if len(m.Payload) > 32<<10 || len(m.Options) > 64 {
			t.Skip("larger than the fuzzed space")
		}
		before := fs.state(t)
		fs.rc.send(m)
		resp := fs.answer(t, tok)
		what := describe(m)
		t.Logf("%s: %v %q", what, resp.Code, diagOf(resp))
		class := resp.Code >> 5
		if class != 2 && class != 4 && class != 5 || resp.Code >= codes.CSM {
			t.Fatalf("%s: answered with %v, not a response code", what, resp.Code)
		}
		if class == 2 {
			return
		}
		if len(resp.Payload) == 0 {
			t.Fatalf("%s: %v without a diagnostic payload", what, resp.Code)
		}
		if class == 4 {
			if after := fs.state(t); after != before {
				t.Fatalf("%s: answered %v (%s) but the service changed:\nbefore %s\nafter  %s", what, resp.Code, diagOf(resp), before, after)
			}
		}
	})
}
