package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// writeFile writes text to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// passwdLine returns a password file line for user with a fresh $7$ hash of pass.
func passwdLine(t *testing.T, user, pass string) string {
	t.Helper()
	h, err := HashPassword([]byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + h + "\n"
}

func login(user, pass string) ConnectInfo {
	return ConnectInfo{ClientID: "c", Username: user, Password: []byte(pass), UsernameSet: true, PasswordSet: true}
}

func TestAuthenticate(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "passwd", passwdLine(t, "alice", "s3cret"))
	anon := ConnectInfo{ClientID: "c"}
	noPassword := ConnectInfo{ClientID: "c", Username: "alice", UsernameSet: true}
	passwordOnly := ConnectInfo{ClientID: "c", Password: []byte("s3cret"), PasswordSet: true}
	tests := []struct {
		name string
		opts Options
		ci   ConnectInfo
		want error
	}{
		{"right password", Options{PasswordFile: pw}, login("alice", "s3cret"), nil},
		{"wrong password", Options{PasswordFile: pw}, login("alice", "s3cret!"), ErrBadCredentials},
		{"unknown user", Options{PasswordFile: pw}, login("bob", "s3cret"), ErrBadCredentials},
		{"unknown user, anonymous allowed", Options{PasswordFile: pw, AllowAnonymous: true}, login("bob", "s3cret"), ErrBadCredentials},
		{"username without password", Options{PasswordFile: pw}, noPassword, ErrBadCredentials},
		{"anonymous refused", Options{PasswordFile: pw}, anon, ErrNotAuthorized},
		{"anonymous allowed", Options{PasswordFile: pw, AllowAnonymous: true}, anon, nil},
		{"password without username is anonymous", Options{PasswordFile: pw}, passwordOnly, ErrNotAuthorized},
		{"no password file, anonymous allowed", Options{AllowAnonymous: true}, login("bob", "x"), nil},
		{"no password file, anonymous refused", Options{}, login("bob", "x"), ErrNotAuthorized},
		{"no password file, nothing allowed", Options{}, anon, ErrNotAuthorized},
		{"certificate identity", Options{UseIdentityAsUsername: true}, ConnectInfo{CertCommonName: "dev1"}, nil},
		// Without a certificate (another listener) the password rules apply, as with
		// Mosquitto's per-listener use_identity_as_username.
		{"no certificate: password rules, anonymous allowed", Options{UseIdentityAsUsername: true, AllowAnonymous: true}, login("alice", "s3cret"), nil},
		{"no certificate: password rules, anonymous refused", Options{UseIdentityAsUsername: true}, login("alice", "s3cret"), ErrNotAuthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewChecker(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Authenticate(tt.ci); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Authenticate = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestIdentity(t *testing.T) {
	plain, err := NewChecker(Options{AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	if u, anon := plain.Identity(login("alice", "x")); u != "alice" || anon {
		t.Errorf("Identity(login alice) = %q, %v; want alice, false", u, anon)
	}
	if _, anon := plain.Identity(ConnectInfo{Username: "ignored"}); !anon {
		t.Error("Identity without the username flag is not anonymous")
	}
	cert, err := NewChecker(Options{UseIdentityAsUsername: true})
	if err != nil {
		t.Fatal(err)
	}
	if u, anon := cert.Identity(ConnectInfo{Username: "alice", UsernameSet: true, CertCommonName: "dev1"}); u != "dev1" || anon {
		t.Errorf("Identity with certificate = %q, %v; want dev1, false", u, anon)
	}
}

func TestCheckerACL(t *testing.T) {
	dir := t.TempDir()
	acl := writeFile(t, dir, "acl", "user alice\ntopic read sensors/+/temp\ntopic write cmd/#\n")

	open, err := NewChecker(Options{AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	if !open.CanPublish("c", "", true, "any/topic") || !open.CanRead("c", "", true, "$SYS/x") || !open.CanSubscribe("c", "", true, "#") {
		t.Error("without an ACL file, something was refused")
	}

	c, err := NewChecker(Options{ACLFile: acl})
	if err != nil {
		t.Fatal(err)
	}
	if !c.CanRead("c", "alice", false, "sensors/a/temp") || c.CanRead("c", "alice", false, "cmd/x") {
		t.Error("CanRead does not follow the ACL")
	}
	if !c.CanPublish("c", "alice", false, "cmd/x") || c.CanPublish("c", "alice", false, "sensors/a/temp") {
		t.Error("CanPublish does not follow the ACL")
	}
	if !c.CanSubscribe("c", "alice", false, "sensors/+/temp") || c.CanSubscribe("c", "alice", false, "sensors/#") {
		t.Error("CanSubscribe does not follow the ACL")
	}

	all, err := NewChecker(Options{ACLFile: acl, GrantAllSubscriptions: true})
	if err != nil {
		t.Fatal(err)
	}
	if !all.CanSubscribe("c", "alice", false, "sensors/#") {
		t.Error("GrantAllSubscriptions refused sensors/#")
	}
	if all.CanRead("c", "alice", false, "sensors/a/humidity") {
		t.Error("GrantAllSubscriptions changed CanRead")
	}
}

func TestNewCheckerErrors(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "passwd", "alice:plain\n")
	acl := writeFile(t, dir, "acl", "topic read a\nfrob\n")
	_, err := NewChecker(Options{PasswordFile: pw, ACLFile: acl})
	if err == nil {
		t.Fatal("NewChecker with two broken files = nil error")
	}
	for _, want := range []string{pw + ":1: ", acl + ":2: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to name %q", err, want)
		}
	}
	if _, err := NewChecker(Options{PasswordFile: filepath.Join(dir, "missing")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing password file: err = %v, want os.ErrNotExist", err)
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "passwd", passwdLine(t, "alice", "old"))
	acl := writeFile(t, dir, "acl", "user alice\ntopic read old/#\n")
	c, err := NewChecker(Options{PasswordFile: pw, ACLFile: acl})
	if err != nil {
		t.Fatal(err)
	}

	writeFile(t, dir, "passwd", passwdLine(t, "alice", "new"))
	writeFile(t, dir, "acl", "user alice\ntopic read new/#\n")
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	if c.Authenticate(login("alice", "new")) != nil || c.Authenticate(login("alice", "old")) == nil {
		t.Fatal("Reload did not switch to the new password file")
	}
	if !c.CanRead("c", "alice", false, "new/x") || c.CanRead("c", "alice", false, "old/x") {
		t.Fatal("Reload did not switch to the new ACL file")
	}

	// Broken files: Reload fails and the Checker keeps the state it had.
	for _, broken := range []struct{ file, text, want string }{
		{"passwd", "alice:new-but-plain\n", pw + ":1: "},
		{"acl", "user alice\ntopic rw new/#\n", acl + ":2: "},
	} {
		orig, err := os.ReadFile(filepath.Join(dir, broken.file))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, broken.file, broken.text)
		if err := c.Reload(); err == nil || !strings.Contains(err.Error(), broken.want) {
			t.Errorf("Reload with broken %s = %v, want an error naming %q", broken.file, err, broken.want)
		}
		if c.Authenticate(login("alice", "new")) != nil {
			t.Errorf("after a failed reload of %s the loaded password file changed", broken.file)
		}
		if !c.CanRead("c", "alice", false, "new/x") || c.CanRead("c", "alice", false, "old/x") {
			t.Errorf("after a failed reload of %s the loaded ACL changed", broken.file)
		}
		writeFile(t, dir, broken.file, string(orig))
	}
	if err := os.Remove(acl); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Reload with the ACL file gone = %v, want os.ErrNotExist", err)
	}
	if !c.CanRead("c", "alice", false, "new/x") {
		t.Error("after a failed reload (file gone) the loaded ACL changed")
	}
}

// TestReloadConcurrent runs checks while reloading: the race detector checks the swap,
// and what every generation allows must stay allowed throughout.
func TestReloadConcurrent(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "passwd", passwdLine(t, "alice", "pw"))
	acl := writeFile(t, dir, "acl", "user alice\ntopic read shared/#\ntopic read gen1/#\n")
	c, err := NewChecker(Options{PasswordFile: pw, ACLFile: acl})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !c.CanRead("c", "alice", false, "shared/x") || c.Authenticate(login("alice", "pw")) != nil {
					t.Error("a check failed during reloads although every generation allows it")
					return
				}
			}
		})
	}
	for i := range 50 {
		gen := "gen1"
		if i%2 == 1 {
			gen = "gen2"
		}
		writeFile(t, dir, "acl", "user alice\ntopic read shared/#\ntopic read "+gen+"/#\n")
		if err := c.Reload(); err != nil {
			t.Error(err)
			break
		}
	}
	close(stop)
	wg.Wait()
	if !c.CanRead("c", "alice", false, "gen2/x") || c.CanRead("c", "alice", false, "gen1/x") {
		t.Error("after the last reload (gen2) the ACL is not gen2")
	}
}
