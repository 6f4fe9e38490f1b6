package auth

import (
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/skein-mq/skein/node/auth/authtest"
)

// sha512Entry builds a $6$ hash by the algorithm Mosquitto 1.6 documents and
// implements: base64(SHA-512(password || salt)), written $6$<base64 salt>$<base64 hash>.
func sha512Entry(password, salt []byte) string {
	sum := sha512.Sum512(append(append([]byte(nil), password...), salt...))
	return "$6$" + base64.StdEncoding.EncodeToString(salt) + "$" + base64.StdEncoding.EncodeToString(sum[:])
}

// runOK runs a Mosquitto program and fails the test unless it exits 0.
func runOK(t *testing.T, name string, args ...string) {
	t.Helper()
	if code, out := authtest.Run(t, name, args...); code != 0 {
		t.Fatalf("%s %q: exit %d: %s", name, args, code, out)
	}
}

// TestCheckMosquittoPasswdFile reads a file that the real mosquitto_passwd wrote, in
// both of its hash formats and with a non-default iteration count.
func TestCheckMosquittoPasswdFile(t *testing.T) {
	authtest.Tool(t, "mosquitto_passwd")
	file := filepath.Join(t.TempDir(), "passwd")
	runOK(t, "mosquitto_passwd", "-c", "-b", file, "alice", "s3cret")
	runOK(t, "mosquitto_passwd", "-b", file, "bob", "hunter2")
	runOK(t, "mosquitto_passwd", "-H", "sha512", "-b", file, "carol", "old style")
	runOK(t, "mosquitto_passwd", "-I", "1000", "-b", file, "dave", "many rounds")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"alice:$7$101$", "bob:$7$101$", "carol:$6$", "dave:$7$1000$"} {
		if !strings.Contains(string(raw), prefix) {
			t.Fatalf("mosquitto_passwd wrote no %q line; file:\n%s", prefix, raw)
		}
	}

	pf, err := LoadPasswordFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pf.Users(), []string{"alice", "bob", "carol", "dave"}; !slices.Equal(got, want) {
		t.Errorf("Users() = %q, want %q", got, want)
	}
	tests := []struct {
		user, pass string
		want       bool
	}{
		{"alice", "s3cret", true},
		{"alice", "s3cret ", false},
		{"alice", "S3cret", false},
		{"alice", "hunter2", false}, // bob's password
		{"alice", "", false},
		{"bob", "hunter2", true},
		{"carol", "old style", true},
		{"carol", "old", false},
		{"dave", "many rounds", true},
		{"dave", "many", false},
		{"mallory", "s3cret", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if got := pf.Check(tt.user, []byte(tt.pass)); got != tt.want {
			t.Errorf("Check(%q, %q) = %v, want %v", tt.user, tt.pass, got, tt.want)
		}
	}
}

func TestCheckSHA512Entry(t *testing.T) {
	salt := []byte("0123456789ab")
	text := "# Mosquitto 1.6 file\nlegacy:" + sha512Entry([]byte("p@ss:word"), salt) + "\n"
	pf, err := ParsePasswordFile(strings.NewReader(text), "legacy")
	if err != nil {
		t.Fatal(err)
	}
	if !pf.Check("legacy", []byte("p@ss:word")) {
		t.Error("Check with the right password = false")
	}
	if pf.Check("legacy", []byte("p@ss:wore")) {
		t.Error("Check with a wrong password = true")
	}
}

// TestHashPasswordAcceptedByMosquitto writes a file with HashPassword and
// HashPasswordWith and has the real broker check it.
func TestHashPasswordAcceptedByMosquitto(t *testing.T) {
	authtest.Tool(t, "mosquitto")
	authtest.Tool(t, "mosquitto_pub")
	users := []struct {
		name, pass string
		opts       *HashOptions // nil: HashPassword
	}{
		{"alice", "s3cret", nil},
		{"bob", "p@ss word:with colon", &HashOptions{Algorithm: SHA512}},
		{"carol", "rounds", &HashOptions{Iterations: 1000}},
	}
	var b strings.Builder
	for _, u := range users {
		var h string
		var err error
		if u.opts == nil {
			h, err = HashPassword([]byte(u.pass))
		} else {
			h, err = HashPasswordWith([]byte(u.pass), *u.opts)
		}
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(u.name + ":" + h + "\n")
	}
	file := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(strings.SplitN(b.String(), ":", 2)[1], "$7$101$") {
		t.Fatalf("HashPassword did not write $7$101$: %s", b.String())
	}

	broker := authtest.StartBroker(t, authtest.BrokerConfig{PasswordFile: file})
	for _, u := range users {
		if code, out := broker.Publish(t, u.name, u.pass); code != 0 {
			t.Errorf("mosquitto_pub as %s with the right password: exit %d: %s\nbroker log:\n%s", u.name, code, out, broker.Log())
		}
		if code, _ := broker.Publish(t, u.name, u.pass+"x"); code == 0 {
			t.Errorf("mosquitto_pub as %s with a wrong password: exit 0, want a refusal", u.name)
		}
	}
	if code, _ := broker.Publish(t, "nobody", "s3cret"); code == 0 {
		t.Error("mosquitto_pub as an unknown user: exit 0, want a refusal")
	}
}

func TestHashPasswordFormat(t *testing.T) {
	a, err := HashPassword([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := HashPassword([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	h, err := parseHash(a)
	if err != nil {
		t.Fatalf("parseHash(HashPassword()) = %v", err)
	}
	if h.alg != PBKDF2SHA512 || h.iterations != DefaultIterations || len(h.salt) != saltLen || len(h.sum) != hashLen {
		t.Errorf("HashPassword = %s: alg %v, %d iterations, %d salt bytes, %d hash bytes; want sha512-pbkdf2, 101, 12, 64",
			a, h.alg, h.iterations, len(h.salt), len(h.sum))
	}
	if !h.verify([]byte("pw")) || h.verify([]byte("pW")) {
		t.Error("verify does not tell the right password from a wrong one")
	}
	if _, err := HashPasswordWith([]byte("pw"), HashOptions{Iterations: -1}); err == nil {
		t.Error("HashPasswordWith(Iterations: -1) = nil error")
	}
	s, err := HashPasswordWith([]byte("pw"), HashOptions{Algorithm: SHA512})
	if err != nil || !strings.HasPrefix(s, "$6$") {
		t.Errorf("HashPasswordWith(SHA512) = %q, %v; want a $6$ hash", s, err)
	}
}

func TestParsePasswordFile(t *testing.T) {
	good := sha512Entry([]byte("pw"), []byte("saltsaltsalt"))
	other := sha512Entry([]byte("other"), []byte("saltsaltsalt"))
	tests := []struct {
		name    string
		text    string
		wantErr string            // substring of the error; "" for success
		check   map[string]string // user -> password that must pass Check
	}{
		{name: "empty", text: ""},
		{name: "comments and blanks", text: "# users\n\n   \nalice:" + good + "\n", check: map[string]string{"alice": "pw"}},
		{name: "crlf and blanks around", text: "  alice:" + good + " \r\n", check: map[string]string{"alice": "pw"}},
		{name: "no final newline", text: "alice:" + good, check: map[string]string{"alice": "pw"}},
		{name: "duplicate: last wins", text: "alice:" + good + "\nalice:" + other + "\n", check: map[string]string{"alice": "other"}},
		{name: "no colon", text: "# c\nalice\n", wantErr: "pw:2: "},
		{name: "empty username", text: ":" + good + "\n", wantErr: "pw:1: empty username"},
		{name: "plain text", text: "alice:" + good + "\nbob:hunter2\n", wantErr: "pw:2: user \"bob\": password is not a $6$ or $7$ hash"},
		{name: "unknown type", text: "bob:$5$c2FsdA==$aGFzaA==\n", wantErr: "pw:1: user \"bob\": unknown hash type $5$"},
		{name: "zero iterations", text: "bob:$7$0$c2FsdA==$aGFzaA==\n", wantErr: "pw:1: user \"bob\": malformed $7$ hash: iterations"},
		{name: "bad iterations", text: "bob:$7$x$c2FsdA==$aGFzaA==\n", wantErr: "pw:1: user \"bob\": malformed $7$ hash: iterations"},
		{name: "missing field", text: "bob:$7$101$c2FsdA==\n", wantErr: "pw:1: user \"bob\": malformed $7$ hash"},
		{name: "bad salt", text: "bob:$6$!!!!$aGFzaA==\n", wantErr: "pw:1: user \"bob\": malformed hash: salt"},
		{name: "short hash", text: "bob:$6$c2FsdA==$aGFzaA==\n", wantErr: "pw:1: user \"bob\": malformed hash: 4 hash bytes, want 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pf, err := ParsePasswordFile(strings.NewReader(tt.text), "pw")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				var pe *ParseError
				if !errors.As(err, &pe) || pe.File != "pw" || pe.Line == 0 {
					t.Errorf("err = %#v, want a *ParseError with file and line", err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q quotes the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for user, pass := range tt.check {
				if !pf.Check(user, []byte(pass)) {
					t.Errorf("Check(%q, %q) = false", user, pass)
				}
				if pf.Check(user, []byte(pass+"!")) {
					t.Errorf("Check(%q, wrong) = true", user)
				}
			}
		})
	}
}

func TestLoadPasswordFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadPasswordFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want os.ErrNotExist", err)
	}
	file := filepath.Join(dir, "passwd")
	if err := os.WriteFile(file, []byte("# ok\nalice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPasswordFile(file); err == nil || !strings.HasPrefix(err.Error(), file+":2: ") {
		t.Errorf("err = %v, want one starting with %q", err, file+":2: ")
	}
}

func TestPasswordEditor(t *testing.T) {
	orig := "# managed by hand\r\nalice:$7$old-alice\n\nbob:$7$old-bob\ncarol:$6$old-carol\n"
	e, err := ReadPasswordEditor(strings.NewReader(orig))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.Users(), []string{"alice", "bob", "carol"}; !slices.Equal(got, want) {
		t.Errorf("Users() = %q, want %q", got, want)
	}
	if !e.Set("bob", "$7$new-bob") {
		t.Error("Set(bob) reported a new user")
	}
	if e.Set("dave", "$7$dave") {
		t.Error("Set(dave) reported replacing a user")
	}
	if !e.Delete("alice") {
		t.Error("Delete(alice) = false")
	}
	if e.Delete("mallory") {
		t.Error("Delete(mallory) = true")
	}
	want := "# managed by hand\r\n\nbob:$7$new-bob\ncarol:$6$old-carol\ndave:$7$dave\n"
	if got := string(e.Bytes()); got != want {
		t.Errorf("Bytes() =\n%q\nwant\n%q", got, want)
	}
}

func TestPasswordEditorUpgrade(t *testing.T) {
	e, err := ReadPasswordEditor(strings.NewReader("# plain\nalice:s3cret\n\nbob:pa:ss word\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Upgrade(HashPassword); err != nil {
		t.Fatal(err)
	}
	out := string(e.Bytes())
	if !strings.HasPrefix(out, "# plain\nalice:$7$101$") || strings.Contains(out, "s3cret") {
		t.Fatalf("upgraded file:\n%s", out)
	}
	pf, err := ParsePasswordFile(strings.NewReader(out), "upgraded")
	if err != nil {
		t.Fatal(err)
	}
	if !pf.Check("alice", []byte("s3cret")) || !pf.Check("bob", []byte("pa:ss word")) {
		t.Errorf("upgraded passwords do not check; file:\n%s", out)
	}

	bad, err := ReadPasswordEditor(strings.NewReader("alice:pw\nnocolon\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Upgrade(HashPassword)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 2 {
		t.Fatalf("Upgrade of a line without ':' = %v, want a *ParseError on line 2", err)
	}
	if got := string(bad.Bytes()); got != "alice:pw\nnocolon\n" {
		t.Errorf("a failed Upgrade changed the file to %q", got)
	}
}
