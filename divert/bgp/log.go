package bgp

import (
	"context"
	"log/slog"
)

// levelHandler passes on only records at or above a level it reads from a
// LevelVar: GoBGP takes a LevelVar next to its logger but does not apply
// it to the logger's handler (it only serves GoBGP's SetLogLevel API).
type levelHandler struct {
	min   *slog.LevelVar
	inner slog.Handler
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min.Level() && h.inner.Enabled(ctx, l)
}

func (h levelHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < h.min.Level() {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h levelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelHandler{h.min, h.inner.WithAttrs(attrs)}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.min, h.inner.WithGroup(name)}
}
