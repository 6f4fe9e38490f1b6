package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/skein-mq/skein/node/auth"
	"github.com/skein-mq/skein/node/auth/authtest"
)

// passwdResult is what one runPasswd call did.
type passwdResult struct {
	code           int
	stdout, stderr string
}

func runPasswdTest(t *testing.T, stdin string, args ...string) passwdResult {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runPasswd(args, strings.NewReader(stdin), &out, &errOut)
	return passwdResult{code, out.String(), errOut.String()}
}

// mustPasswd runs runPasswd in batch style and fails the test unless it exits 0
// silently, as mosquitto_passwd does on success.
func mustPasswd(t *testing.T, args ...string) {
	t.Helper()
	if r := runPasswdTest(t, "", args...); r.code != 0 || r.stderr != "" {
		t.Fatalf("skein passwd %q: exit %d, stderr %q", args, r.code, r.stderr)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// loadPasswords reads path with the broker's parser.
func loadPasswords(t *testing.T, path string) *auth.PasswordFile {
	t.Helper()
	pf, err := auth.LoadPasswordFile(path)
	if err != nil {
		t.Fatalf("auth.LoadPasswordFile: %v; file:\n%s", err, readFile(t, path))
	}
	return pf
}

func checkPasswords(t *testing.T, pf *auth.PasswordFile, good, bad map[string]string) {
	t.Helper()
	for user, pass := range good {
		if !pf.Check(user, []byte(pass)) {
			t.Errorf("Check(%q, %q) = false, want true", user, pass)
		}
	}
	for user, pass := range bad {
		if pf.Check(user, []byte(pass)) {
			t.Errorf("Check(%q, %q) = true, want false", user, pass)
		}
	}
}

func TestPasswdCreateAddReplaceDelete(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passwd")

	mustPasswd(t, "-c", "-b", file, "alice", "s3cret")
	created := readFile(t, file)
	if !strings.HasPrefix(created, "alice:$7$101$") || strings.Count(created, "\n") != 1 {
		t.Fatalf("-c wrote %q, want one alice:$7$101$ line", created)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("-c file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	checkPasswords(t, loadPasswords(t, file), map[string]string{"alice": "s3cret"}, map[string]string{"alice": "S3cret"})

	// Adding a user appends and leaves alice's line byte for byte.
	mustPasswd(t, "-b", file, "bob", "hunter2")
	added := readFile(t, file)
	if !strings.HasPrefix(added, created) {
		t.Errorf("adding bob changed alice's line:\nbefore %q\nafter  %q", created, added)
	}
	pf := loadPasswords(t, file)
	if got := pf.Users(); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Errorf("users = %q, want [alice bob]", got)
	}
	checkPasswords(t, pf, map[string]string{"alice": "s3cret", "bob": "hunter2"}, nil)

	// Replacing alice's password keeps her in first place and bob's line unchanged.
	mustPasswd(t, "-b", file, "alice", "n3w")
	replaced := readFile(t, file)
	lines := strings.Split(strings.TrimSuffix(replaced, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "alice:") || lines[1] != strings.Split(added, "\n")[1] {
		t.Errorf("after replacing alice's password the file is\n%s", replaced)
	}
	checkPasswords(t, loadPasswords(t, file), map[string]string{"alice": "n3w", "bob": "hunter2"}, map[string]string{"alice": "s3cret"})

	// -c overwrites.
	mustPasswd(t, "-c", "-b", file, "carol", "x")
	if got := loadPasswords(t, file).Users(); !slices.Equal(got, []string{"carol"}) {
		t.Errorf("after -c the users are %q, want [carol]", got)
	}

	// -D deletes; an unknown user is a warning, exit 1, and no change.
	mustPasswd(t, "-b", file, "dave", "y")
	mustPasswd(t, "-D", file, "carol")
	if got := loadPasswords(t, file).Users(); !slices.Equal(got, []string{"dave"}) {
		t.Errorf("after -D carol the users are %q, want [dave]", got)
	}
	before := readFile(t, file)
	r := runPasswdTest(t, "", "-D", file, "nobody")
	if r.code != 1 || r.stderr != "Warning: User nobody not found in password file.\n" {
		t.Errorf("-D nobody: exit %d, stderr %q", r.code, r.stderr)
	}
	if readFile(t, file) != before {
		t.Error("-D of an unknown user changed the file")
	}
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("backup file left behind: %v", err)
	}
}

func TestPasswdHashOptions(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passwd")
	mustPasswd(t, "-H", "sha512", "-c", "-b", file, "old", "pw1")
	mustPasswd(t, "-I", "1000", "-b", file, "slow", "pw2")
	mustPasswd(t, "-H", "sha512-pbkdf2", "-b", file, "new", "pw3")
	text := readFile(t, file)
	for _, prefix := range []string{"old:$6$", "slow:$7$1000$", "new:$7$101$"} {
		if !strings.Contains(text, "\n"+prefix) && !strings.HasPrefix(text, prefix) {
			t.Errorf("no %q line in\n%s", prefix, text)
		}
	}
	checkPasswords(t, loadPasswords(t, file), map[string]string{"old": "pw1", "slow": "pw2", "new": "pw3"}, map[string]string{"old": "pw2"})
}

func TestPasswdUpgrade(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(file, []byte("# plain text\nalice:s3cret\nbob:hunter 2\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	mustPasswd(t, "-U", file)
	text := readFile(t, file)
	if !strings.HasPrefix(text, "# plain text\nalice:$7$101$") || strings.Contains(text, "s3cret") {
		t.Fatalf("-U wrote\n%s", text)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("-U changed the file mode to %v (%v), want 0640 kept", fi.Mode().Perm(), err)
	}
	checkPasswords(t, loadPasswords(t, file), map[string]string{"alice": "s3cret", "bob": "hunter 2"}, nil)

	corrupt := "alice:pw\nnot a user line\n"
	if err := os.WriteFile(file, []byte(corrupt), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runPasswdTest(t, "", "-U", file)
	if r.code != 1 || r.stderr != "Error: Corrupt password file at line 2.\n" {
		t.Errorf("-U of a corrupt file: exit %d, stderr %q", r.code, r.stderr)
	}
	if readFile(t, file) != corrupt {
		t.Error("-U of a corrupt file changed it")
	}
}

func TestPasswdInteractive(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "passwd")

	r := runPasswdTest(t, "s3cret\ns3cret\n", "-c", file, "alice")
	if r.code != 0 || r.stdout != "Password: \nReenter password: \n" || r.stderr != "" {
		t.Fatalf("interactive -c: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runPasswdTest(t, "hunter2\r\nhunter2\r\n", file, "bob")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("interactive add: exit %d, stderr %q", r.code, r.stderr)
	}
	checkPasswords(t, loadPasswords(t, file), map[string]string{"alice": "s3cret", "bob": "hunter2"}, map[string]string{"bob": "hunter2\r"})

	before := readFile(t, file)
	tests := []struct {
		name, stdin string
		args        []string
		code        int
		stderr      string
	}{
		{"mismatch", "one\ntwo\n", []string{file, "alice"}, 2, "Error: Passwords do not match.\n"},
		{"mismatch on create", "one\ntwo\n", []string{"-c", file, "alice"}, 2, "Error: Passwords do not match.\n"},
		{"empty password", "\n", []string{file, "alice"}, 1, "Error: Empty password.\n"},
		{"no second line", "one\n", []string{file, "alice"}, 1, "Error: Empty password.\n"},
		{"no input", "", []string{file, "alice"}, 1, "Error: Empty password.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runPasswdTest(t, tt.stdin, tt.args...)
			if r.code != tt.code || r.stderr != tt.stderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", r.code, r.stderr, tt.code, tt.stderr)
			}
			if got := readFile(t, file); got != before {
				t.Errorf("the file changed to\n%s", got)
			}
		})
	}
}

// passwdErrorCases are argument errors and the exit code and stderr mosquitto_passwd
// 2.0 gives for them ("FILE" stands for an existing file, "MISSING" for a missing one).
// A case with usage set prints the usage text on stdout instead.
var passwdErrorCases = []struct {
	args   []string
	code   int
	stderr string
	usage  bool
}{
	{args: nil, code: 1, usage: true},
	{args: []string{"-x", "FILE", "u"}, code: 1, usage: true},
	{args: []string{"FILE"}, code: 1, usage: true},
	{args: []string{"FILE", "u", "p"}, code: 1, usage: true},
	{args: []string{"-b", "FILE", "u"}, code: 1, usage: true},
	{args: []string{"-b", "FILE", "u", "p", "x"}, code: 1, usage: true},
	{args: []string{"-c", "FILE"}, code: 1, stderr: "Error: -c argument given but password file or username missing.\n"},
	{args: []string{"-c", "-b", "FILE", "u"}, code: 1, stderr: "Error: -c argument given but password file, username, or password missing.\n"},
	{args: []string{"-D", "FILE"}, code: 1, stderr: "Error: -D argument given but password file or username missing.\n"},
	{args: []string{"-U"}, code: 1, stderr: "Error: -U argument given but password file missing.\n"},
	{args: []string{"-U", "FILE", "u"}, code: 1, stderr: "Error: -U argument given but password file missing.\n"},
	{args: []string{"-c", "-D", "FILE", "u"}, code: 1, stderr: "Error: -c and -D cannot be used together.\n"},
	{args: []string{"-c", "-U", "FILE"}, code: 1, stderr: "Error: -c and -U cannot be used together.\n"},
	{args: []string{"-D", "-U", "FILE"}, code: 1, stderr: "Error: -D and -U cannot be used together.\n"},
	{args: []string{"-D", "-b", "FILE", "u", "p"}, code: 1, stderr: "Error: -b and -D cannot be used together.\n"},
	{args: []string{"-H"}, code: 1, stderr: "Error: -H argument given but not enough other arguments.\n"},
	{args: []string{"-H", "md5", "-b", "FILE", "u", "p"}, code: 1, stderr: "Error: Unknown hash type 'md5'\n"},
	{args: []string{"-I"}, code: 1, stderr: "Error: -I argument given but not enough other arguments.\n"},
	{args: []string{"-I", "0", "-b", "FILE", "u", "p"}, code: 1, stderr: "Error: Number of iterations must be > 0.\n"},
	{args: []string{"-I", "many", "-b", "FILE", "u", "p"}, code: 1, stderr: "Error: Number of iterations must be > 0.\n"},
	{args: []string{"-b", "FILE", "a:b", "p"}, code: 1, stderr: "Error: Username must not contain the ':' character.\n"},
	{args: []string{"-b", "MISSING", "u", "p"}, code: 1, stderr: "Error: Unable to open password file MISSING. No such file or directory.\n"},
	{args: []string{"-D", "FILE", "nobody"}, code: 1, stderr: "Warning: User nobody not found in password file.\n"},
}

// substitute replaces the FILE and MISSING placeholders of args.
func substitute(args []string, file, missing string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		switch a {
		case "FILE":
			a = file
		case "MISSING":
			a = missing
		}
		out[i] = a
	}
	return out
}

func TestPasswdArgumentErrors(t *testing.T) {
	dir := t.TempDir()
	file, missing := filepath.Join(dir, "passwd"), filepath.Join(dir, "missing")
	mustPasswd(t, "-c", "-b", file, "u", "p")
	orig := readFile(t, file)
	for _, tt := range passwdErrorCases {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runPasswdTest(t, "", substitute(tt.args, file, missing)...)
			want := strings.ReplaceAll(tt.stderr, "MISSING", missing)
			if r.code != tt.code || r.stderr != want {
				t.Errorf("exit %d, stderr %q; want %d, %q", r.code, r.stderr, tt.code, want)
			}
			if tt.usage != (r.stdout == passwdUsage) {
				t.Errorf("stdout = %q; usage expected: %v", r.stdout, tt.usage)
			}
			if readFile(t, file) != orig {
				t.Fatal("a refused command changed the file")
			}
		})
	}
	// Not in mosquitto_passwd, which writes these users although no client could
	// log in with them.
	for _, user := range []string{"", "a\nb", "a\xffb"} {
		if r := runPasswdTest(t, "", "-b", file, user, "p"); r.code != 1 || !strings.HasPrefix(r.stderr, "Error: Username must ") {
			t.Errorf("username %q: exit %d, stderr %q; want a refusal", user, r.code, r.stderr)
		}
	}
}

// TestPasswdMatchesMosquittoPasswd runs the real mosquitto_passwd on the same argument
// errors, to keep passwdErrorCases honest: exit codes and messages must be the same
// but for the program name.
func TestPasswdMatchesMosquittoPasswd(t *testing.T) {
	authtest.Tool(t, "mosquitto_passwd")
	dir := t.TempDir()
	file, missing := filepath.Join(dir, "passwd"), filepath.Join(dir, "missing")
	if code, out := authtest.Run(t, "mosquitto_passwd", "-c", "-b", file, "u", "p"); code != 0 {
		t.Fatalf("mosquitto_passwd -c: exit %d: %s", code, out)
	}
	for _, tt := range passwdErrorCases {
		args := substitute(tt.args, file, missing)
		code, out := authtest.Run(t, "mosquitto_passwd", args...)
		want := strings.ReplaceAll(tt.stderr, "MISSING", missing)
		if tt.usage {
			want = "mosquitto_passwd is a tool for managing password files for mosquitto."
		}
		if code != tt.code || !strings.Contains(out, strings.TrimSuffix(want, "\n")) {
			t.Errorf("mosquitto_passwd %q: exit %d, output %q; the test table says %d, %q", tt.args, code, out, tt.code, want)
		}
	}

	// An interactive mismatch, which mosquitto_passwd reads from a pipe too.
	if code, out := authtest.RunStdin(t, strings.NewReader("one\ntwo\n"), "mosquitto_passwd", file, "u"); code != 2 || !strings.Contains(out, "Error: Passwords do not match.") {
		t.Errorf("mosquitto_passwd mismatch: exit %d, output %q; want 2 and the message", code, out)
	}
}

// TestPasswdEditsMosquittoPasswdFile edits a file the real mosquitto_passwd wrote:
// the lines skein passwd does not change stay byte for byte.
func TestPasswdEditsMosquittoPasswdFile(t *testing.T) {
	authtest.Tool(t, "mosquitto_passwd")
	file := filepath.Join(t.TempDir(), "passwd")
	for _, args := range [][]string{{"-c", "-b", file, "alice", "a"}, {"-b", file, "bob", "b"}, {"-H", "sha512", "-b", file, "carol", "c"}} {
		if code, out := authtest.Run(t, "mosquitto_passwd", args...); code != 0 {
			t.Fatalf("mosquitto_passwd %q: exit %d: %s", args, code, out)
		}
	}
	orig := strings.Split(readFile(t, file), "\n")
	mustPasswd(t, "-b", file, "bob", "B")
	mustPasswd(t, "-b", file, "dave", "d")
	got := strings.Split(readFile(t, file), "\n")
	if len(got) != 5 || got[0] != orig[0] || got[2] != orig[2] || got[1] == orig[1] || !strings.HasPrefix(got[3], "dave:") {
		t.Errorf("file after edits:\n%s\nwant alice and carol unchanged, bob replaced in place, dave appended", strings.Join(got, "\n"))
	}
	checkPasswords(t, loadPasswords(t, file), map[string]string{"alice": "a", "bob": "B", "carol": "c", "dave": "d"}, map[string]string{"bob": "b"})
}

// TestPasswdFileAcceptedByMosquitto has the real broker check logins against a file
// written by skein passwd.
func TestPasswdFileAcceptedByMosquitto(t *testing.T) {
	authtest.Tool(t, "mosquitto")
	authtest.Tool(t, "mosquitto_pub")
	file := filepath.Join(t.TempDir(), "passwd")
	mustPasswd(t, "-c", "-b", file, "alice", "s3cret")
	mustPasswd(t, "-H", "sha512", "-b", file, "bob", "hunter2")
	mustPasswd(t, "-I", "500", "-b", file, "carol", "pa ss")
	if r := runPasswdTest(t, "dave's\ndave's\n", file, "dave"); r.code != 0 {
		t.Fatalf("interactive add: exit %d, stderr %q", r.code, r.stderr)
	}
	users := map[string]string{"alice": "s3cret", "bob": "hunter2", "carol": "pa ss", "dave": "dave's"}

	broker := authtest.StartBroker(t, authtest.BrokerConfig{PasswordFile: file})
	for user, pass := range users {
		if code, out := broker.Publish(t, user, pass); code != 0 {
			t.Errorf("mosquitto_pub as %s: exit %d: %s\nbroker log:\n%s", user, code, out, broker.Log())
		}
		if code, _ := broker.Publish(t, user, pass+"!"); code == 0 {
			t.Errorf("mosquitto_pub as %s with a wrong password: exit 0, want a refusal", user)
		}
	}
}
