package auth

import (
	"net"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func tcpAddr(ip string, port int) net.Addr {
	return &net.TCPAddr{IP: net.ParseIP(ip), Port: port}
}

func TestLoginLimiter(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	l := NewLoginLimiter(LoginLimiterConfig{Now: clock.Now}) // defaults: 5 per 10 s
	attacker := tcpAddr("192.0.2.1", 40000)
	for i := range DefaultMaxFailures {
		if !l.Allow(attacker) {
			t.Fatalf("Allow after %d failures = false, want true", i)
		}
		l.Fail(attacker)
	}
	if l.Allow(attacker) {
		t.Fatal("Allow after 5 failures = true")
	}
	if l.Allow(tcpAddr("192.0.2.1", 40001)) {
		t.Error("a new port of the same IP is allowed")
	}
	if !l.Allow(tcpAddr("192.0.2.2", 40000)) {
		t.Error("another IP is refused")
	}
	if !l.Allow(&net.UnixAddr{Name: "@", Net: "unix"}) {
		t.Error("an address without failures is refused")
	}
	clock.Advance(DefaultFailWindow - time.Millisecond)
	if l.Allow(attacker) {
		t.Error("Allow before the window passed = true")
	}
	clock.Advance(time.Millisecond)
	if !l.Allow(attacker) {
		t.Error("Allow once the window passed = false")
	}
	if n := l.Len(); n != 0 {
		t.Errorf("Len after the window = %d, want 0: expired entries are kept", n)
	}

	// A new window starts at the next failure.
	l.Fail(attacker)
	clock.Advance(DefaultFailWindow / 2)
	for range DefaultMaxFailures - 1 {
		l.Fail(attacker)
	}
	if l.Allow(attacker) {
		t.Error("5 failures within a new window are allowed")
	}
	l.Reset(attacker)
	if !l.Allow(attacker) {
		t.Error("Allow after Reset = false")
	}
}

func TestLoginLimiterBounded(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	l := NewLoginLimiter(LoginLimiterConfig{MaxFailures: 1, Window: time.Minute, MaxAddrs: 3, Now: clock.Now})
	ips := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"}
	for _, ip := range ips {
		l.Fail(tcpAddr(ip, 1))
		clock.Advance(time.Second)
	}
	if n := l.Len(); n != 3 {
		t.Fatalf("Len = %d, want MaxAddrs = 3", n)
	}
	for i, ip := range ips {
		evicted := i < 2 // the oldest windows go first
		if got := l.Allow(tcpAddr(ip, 1)); got != evicted {
			t.Errorf("Allow(%s) = %v, want %v", ip, got, evicted)
		}
	}
}
