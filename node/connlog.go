package node

import (
	"context"
	"log/slog"
)

// connHandler is the log handler of one connection: it adds the connection's remote
// address, and its client id once CONNECT is accepted, to each record as the record
// is logged. Building a child logger with Logger.With for every connection would
// format those attributes up front and keep a few hundred bytes per connection, for
// lines that most connections never log.
type connHandler struct {
	c      *conn
	parent slog.Handler
}

// initLog points c.log at c's own logger, which lives inside c.
func (c *conn) initLog() {
	c.lh = connHandler{c: c, parent: c.b.log.Handler()}
	c.logv = *slog.New(&c.lh)
	c.log = &c.logv
}

func (h *connHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.parent.Enabled(ctx, l)
}

func (h *connHandler) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(slog.String("remote", h.c.nc.RemoteAddr().String()))
	if h.c.idLogged.Load() {
		r.AddAttrs(slog.String("client_id", h.c.clientID))
	}
	return h.parent.Handle(ctx, r)
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
	as := []slog.Attr{slog.String("remote", h.c.nc.RemoteAddr().String())}
	if h.c.idLogged.Load() {
		as = append(as, slog.String("client_id", h.c.clientID))
	}
	return h.parent.WithAttrs(as)
}
