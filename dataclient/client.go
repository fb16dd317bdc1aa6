// Package dataclient is the DOTS client side of the data channel (RFC 8783):
// RESTCONF (RFC 8040) over HTTPS with the client certificate of the signal
// channel and the same cuid (RFC 8783 §3), the RESTCONF root found through
// /.well-known/host-meta (RFC 8040 §3.1), registration of the DOTS client
// (RFC 8783 §5.1), aliases (§6), filtering rules (§7.2-§7.4) and the server's
// filtering capabilities (§7.1). An RFC 8040 §7.1 error body comes back as
// an *Error that names the status, error-tag, message and error-path.
package dataclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// MediaType is the RESTCONF JSON media type (RFC 8040 §5.2).
const MediaType = "application/yang-data+json"

// DefaultRoot is the RESTCONF root used when the server's host-meta names
// none (the root of RFC 8783's examples).
const DefaultRoot = "/restconf"

// maxBody bounds what the client reads of an answer.
const maxBody = 8 << 20

// Config configures a client.
type Config struct {
	// URL is the data channel's base, https://HOST:PORT (a path is ignored:
	// the RESTCONF root comes from host-meta).
	URL         string
	Certificate tls.Certificate
	RootCAs     *x509.CertPool
	ServerName  string // for certificate verification; default: the host of URL
	// CUID is the client's cuid, the same as on the signal channel (RFC
	// 8783 §3: "the same 'cuid' MUST be used").
	CUID string
	// Timeout bounds the TLS handshake (requests are bounded by their
	// context); default 10 s.
	Timeout time.Duration
}

// Client speaks RESTCONF to one DOTS server. It is safe for concurrent use.
type Client struct {
	base *url.URL
	cuid string
	http *http.Client

	mu         sync.Mutex
	root       string // the RESTCONF root path, once discovered
	registered bool
}

// New checks cfg and returns a client; nothing is sent until the first request.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("dataclient: URL %q: want https://HOST:PORT", cfg.URL)
	}
	if cfg.CUID == "" {
		return nil, errors.New("dataclient: a cuid is required")
	}
	if len(cfg.Certificate.Certificate) == 0 {
		return nil, errors.New("dataclient: a client certificate is required (RFC 8783 §3: mutual TLS)")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	tc := &tls.Config{
		Certificates: []tls.Certificate{cfg.Certificate},
		RootCAs:      cfg.RootCAs,
		ServerName:   cfg.ServerName,
		MinVersion:   tls.VersionTLS12,
	}
	tr := &http.Transport{TLSClientConfig: tc, TLSHandshakeTimeout: cfg.Timeout, ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second}
	return &Client{base: &url.URL{Scheme: u.Scheme, Host: u.Host}, cuid: cfg.CUID, http: &http.Client{Transport: tr}}, nil
}

// CUID is the cuid the client speaks as.
func (c *Client) CUID() string { return c.cuid }

// Close drops the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Root returns the RESTCONF root path: the href of the host-meta link of
// relation "restconf" (RFC 8040 §3.1), or DefaultRoot when the server has
// no host-meta or it names no such link. It is asked once per client.
func (c *Client) Root(ctx context.Context) (string, error) {
	c.mu.Lock()
	root := c.root
	c.mu.Unlock()
	if root != "" {
		return root, nil
	}
	root, err := c.discover(ctx)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.root = root
	c.mu.Unlock()
	return root, nil
}

// xrd is the part of an XRD document (RFC 6415) that names the root.
type xrd struct {
	Links []struct {
		Rel  string `xml:"rel,attr"`
		Href string `xml:"href,attr"`
	} `xml:"Link"`
}

func (c *Client) discover(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.JoinPath("/.well-known/host-meta").String(), nil)
	if err != nil {
		return "", fmt.Errorf("dataclient: %w", err)
	}
	req.Header.Set("Accept", "application/xrd+xml")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("dataclient: no answer from %s: %w", c.base.Host, bare(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return "", fmt.Errorf("dataclient: RESTCONF root discovery at %s: %w", c.base.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		return DefaultRoot, nil
	}
	var doc xrd
	if xml.Unmarshal(b, &doc) != nil {
		return DefaultRoot, nil
	}
	for _, l := range doc.Links {
		if l.Rel != "restconf" || l.Href == "" {
			continue
		}
		h, err := url.Parse(l.Href)
		if err != nil {
			return "", fmt.Errorf("dataclient: host-meta of %s: restconf link %q is not a URI reference", c.base.Host, l.Href)
		}
		abs := c.base.ResolveReference(h)
		if abs.Host != c.base.Host {
			return "", fmt.Errorf("dataclient: host-meta of %s points the RESTCONF root to another server (%s): set data-channel to it", c.base.Host, abs.Host)
		}
		return "/" + strings.Trim(abs.Path, "/"), nil
	}
	return DefaultRoot, nil
}

// Response is a RESTCONF answer that was not an error.
type Response struct {
	Status int
	Body   []byte // the JSON body, if any
}

// do sends one request to the RESTCONF root + rawPath (below the root,
// e.g. "/data/ietf-dots-data-channel:dots-data", its list keys already
// escaped with key) and body as its JSON body (nil for none), and returns
// the answer; a status of 400 or more is an *Error.
func (c *Client) do(ctx context.Context, method, rawPath string, query url.Values, body []byte) (*Response, error) {
	root, err := c.Root(ctx)
	if err != nil {
		return nil, err
	}
	u := *c.base
	u.RawPath = root + rawPath
	if u.Path, err = url.PathUnescape(u.RawPath); err != nil {
		return nil, fmt.Errorf("dataclient: path %q: %w", u.RawPath, err)
	}
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("dataclient: %w", err)
	}
	req.Header.Set("Accept", MediaType)
	if body != nil {
		req.Header.Set("Content-Type", MediaType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dataclient: %s %s: %w", method, u.Path, bare(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("dataclient: %s %s: reading the answer: %w", method, u.Path, err)
	}
	if resp.StatusCode >= 400 {
		return nil, parseError(resp.StatusCode, b)
	}
	return &Response{Status: resp.StatusCode, Body: b}, nil
}

// key percent-encodes a list key value for a path segment (RFC 8040
// §3.5.3): every character but the unreserved ones.
func key(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte("-._~", ch) >= 0 {
			b.WriteByte(ch)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", ch)
	}
	return b.String()
}

// bare drops the method and URL a *url.Error repeats.
func bare(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
