// Package datachannel is the DOTS data channel transport of dotsd: RESTCONF
// (RFC 8040) over HTTPS with mutual TLS and JSON bodies per RFC 7951
// (media type application/yang-data+json), serving the
// ietf-dots-data-channel tree of RFC 8783 on the mitigation service.
//
// It implements RFC 8783 §3 (RESTCONF over TLS, the same client identity
// and cuid as the signal channel), §5 (dots-client registration and
// unregistration), §6 (aliases: POST, PUT, GET, DELETE), §7.1
// (capabilities: what this server enforces), §7.2–§7.4 (filtering rules as
// RFC 8519 ACLs), RFC 8040 §3.1 root discovery (/.well-known/host-meta, an
// XRD naming /restconf), §3.3 the API resource, §4.8.1 content, §4.8.2 depth, §4.8.5 insert and
// §4.8.6 point query parameters, and §7.1 error bodies
// (ietf-restconf:errors) for 400, 403, 404, 405, 409, 413 and 415.
//
// Request bodies are bounded (MaxBody) and the HTTP server has read,
// write and idle timeouts.
package datachannel
