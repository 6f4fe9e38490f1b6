package node

import (
	"context"
	"log/slog"
)

// connHandler is the log handler of one connection, the connection itself: it adds
// the connection's remote address, and its client id once CONNECT is accepted, to
// each record as the record is logged, then hands it to the broker's handler.
// Building a child logger with Logger.With for every connection would format those
// attributes up front and keep a few hundred bytes per connection, for lines that
// most connections never log.
type connHandler conn

// initLog points c.log at c's own logger, which lives inside c.
func (c *conn) initLog() {
	c.logv = *slog.New((*connHandler)(c))
	c.log = &c.logv
}

func (h *connHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.b.log.Handler().Enabled(ctx, l)
}

func (h *connHandler) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(slog.String("remote", h.nc.RemoteAddr().String()))
	if h.idLogged.Load() {
		r.AddAttrs(slog.String("client_id", h.clientID))
	}
	return h.b.log.Handler().Handle(ctx, r)
}

// WithAttrs and WithGroup fix the connection's attributes now: nothing in the
// broker derives loggers from a connection's, so this is the rare path.
func (h *connHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.fixed().WithAttrs(as)
}

func (h *connHandler) WithGroup(name string) slog.Handler {
	return h.fixed().WithGroup(name)
}

func (h *connHandler) fixed() slog.Handler {
	as := []slog.Attr{slog.String("remote", h.nc.RemoteAddr().String())}
	if h.idLogged.Load() {
		as = append(as, slog.String("client_id", h.clientID))
	}
	return h.b.log.Handler().WithAttrs(as)
}
