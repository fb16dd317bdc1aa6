package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/levee-dots/levee/pki"
)

// keyLogWarnEvery is how often dotsd repeats that the key log is on.
const keyLogWarnEvery = time.Hour

// openKeyLog opens tls.key-log, if set, and warns at once and at every
// tick (nil: every keyLogWarnEvery) until ctx ends that the secrets of
// every session go there; stop closes the file. Without tls.key-log it
// returns nil.
func openKeyLog(ctx context.Context, path string, log *slog.Logger, ticks <-chan time.Time) (*pki.KeyLog, func(), error) {
	if path == "" {
		return nil, func() {}, nil
	}
	k, err := pki.OpenKeyLog(path)
	if err != nil {
		return nil, nil, fmt.Errorf("tls.key-log: %w (remove the key, or name a file dotsd may write)", err)
	}
	warn := func() {
		log.Warn("tls.key-log is on: the secrets of every DTLS and TLS session are written to the file, whoever reads it can decrypt them; remove the key when done debugging",
			"file", path)
	}
	warn()
	stop := everyTick(ctx, ticks, keyLogWarnEvery, warn)
	return k, func() {
		stop()
		_ = k.Close()
	}, nil
}

// keyLogWriter is k as an io.Writer, nil (not a nil *KeyLog) without one.
func keyLogWriter(k *pki.KeyLog) io.Writer {
	if k == nil {
		return nil
	}
	return k
}
