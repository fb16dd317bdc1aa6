// Package store persists DOTS server state (RFC 9132 §4.4 mitigations, §4.5
// session configuration) so that an accepted request is on disk before it is
// acknowledged.
//
// [DB] is a bbolt-backed store with group commit: a single writer goroutine
// owns all write transactions. Each [DB.Apply] call is queued to the writer,
// which takes the first queued request, drains (without waiting) whatever
// other requests are already queued, up to [Options.MaxBatch], commits them
// all in one fsync'd transaction and then answers every caller. A lone caller
// therefore commits immediately, while many concurrent callers share one
// fsync. If a combined transaction fails, each request in it is retried in a
// transaction of its own, so one bad request cannot fail the others.
//
// [Memory] offers the same methods without touching the disk, for unit tests.
package store
