package auth

import (
	"container/list"
	"net"
	"sync"
	"time"
)

// Defaults of LoginLimiterConfig.
const (
	DefaultMaxFailures = 5
	DefaultFailWindow  = 10 * time.Second
	DefaultMaxAddrs    = 10000
)

// LoginLimiterConfig configures a LoginLimiter; zero fields take the defaults.
type LoginLimiterConfig struct {
	// MaxFailures is how many failed logins a source address may make per window.
	// Default DefaultMaxFailures (5).
	MaxFailures int
	// Window is how long failures count, from the first failure of a window. Default
	// DefaultFailWindow (10 s).
	Window time.Duration
	// MaxAddrs bounds the addresses tracked at once; past it the address whose window
	// started first is forgotten. Default DefaultMaxAddrs (10000).
	MaxAddrs int
	// Now is the clock; default time.Now. Tests inject a fake one.
	Now func() time.Time
}

// LoginLimiter throttles failed logins per source IP address (the port is ignored,
// since every connection has a new one): after MaxFailures failures within Window,
// Allow reports false until that window has passed. The broker calls Allow before
// checking a CONNECT's credentials and Fail when the check fails. It is safe for
// concurrent use and its memory is bounded by MaxAddrs.
type LoginLimiter struct {
	cfg LoginLimiterConfig

	mu    sync.Mutex               // guards addrs and order
	addrs map[string]*list.Element // IP -> element of order holding *failures
	order *list.List               // *failures, oldest window start first
}

// failures counts one address's failed logins in its current window.
type failures struct {
	ip    string
	start time.Time // first failure of the window
	n     int
}

// NewLoginLimiter returns a LoginLimiter with cfg, defaults filled in.
func NewLoginLimiter(cfg LoginLimiterConfig) *LoginLimiter {
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = DefaultMaxFailures
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultFailWindow
	}
	if cfg.MaxAddrs <= 0 {
		cfg.MaxAddrs = DefaultMaxAddrs
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &LoginLimiter{cfg: cfg, addrs: make(map[string]*list.Element), order: list.New()}
}

// Allow reports whether a login from addr may be attempted now.
func (l *LoginLimiter) Allow(addr net.Addr) bool {
	ip := addrIP(addr)
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(now)
	e, ok := l.addrs[ip]
	return !ok || e.Value.(*failures).n < l.cfg.MaxFailures
}

// Fail records a failed login from addr.
func (l *LoginLimiter) Fail(addr net.Addr) {
	ip := addrIP(addr)
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(now)
	if e, ok := l.addrs[ip]; ok {
		e.Value.(*failures).n++
		return
	}
	for l.order.Len() >= l.cfg.MaxAddrs {
		l.removeLocked(l.order.Front())
	}
	l.addrs[ip] = l.order.PushBack(&failures{ip: ip, start: now, n: 1})
}

// Reset forgets addr's failures, for a successful login.
func (l *LoginLimiter) Reset(addr net.Addr) {
	ip := addrIP(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.addrs[ip]; ok {
		l.removeLocked(e)
	}
}

// Len returns how many addresses have failures in their current window.
func (l *LoginLimiter) Len() int {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(now)
	return l.order.Len()
}

// expireLocked drops the addresses whose window has passed. Windows are in start order,
// so it stops at the first live one.
func (l *LoginLimiter) expireLocked(now time.Time) {
	for e := l.order.Front(); e != nil; e = l.order.Front() {
		if now.Sub(e.Value.(*failures).start) < l.cfg.Window {
			return
		}
		l.removeLocked(e)
	}
}

func (l *LoginLimiter) removeLocked(e *list.Element) {
	delete(l.addrs, e.Value.(*failures).ip)
	l.order.Remove(e)
}

// addrIP returns the IP of addr without its port (the whole text when it has none).
func addrIP(addr net.Addr) string {
	switch a := addr.(type) {
	case nil:
		return ""
	case *net.TCPAddr:
		if a == nil {
			return ""
		}
		return a.IP.String()
	}
	s := addr.String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}
