package auth

import (
	"bufio"
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// HashAlgorithm is a password hash format of Mosquitto password files.
type HashAlgorithm int

const (
	// PBKDF2SHA512 is PBKDF2-HMAC-SHA512, written as
	// `$7$<iterations>$<base64 salt>$<base64 hash>`: the default of mosquitto_passwd 2.0
	// (`-H sha512-pbkdf2`).
	PBKDF2SHA512 HashAlgorithm = iota
	// SHA512 is one SHA-512 over the password followed by the salt, written as
	// `$6$<base64 salt>$<base64 hash>`: the format of Mosquitto 1.6 and earlier
	// (`-H sha512`). It is fast to brute-force; prefer PBKDF2SHA512.
	SHA512
)

// String returns the name mosquitto_passwd's -H option uses for a.
func (a HashAlgorithm) String() string {
	switch a {
	case PBKDF2SHA512:
		return "sha512-pbkdf2"
	case SHA512:
		return "sha512"
	}
	return "HashAlgorithm(" + strconv.Itoa(int(a)) + ")"
}

// DefaultIterations is the PBKDF2 iteration count mosquitto_passwd 2.0 writes, and what
// HashPassword uses.
const DefaultIterations = 101

const (
	saltLen = 12 // bytes of random salt, as mosquitto_passwd writes
	hashLen = 64 // bytes of SHA-512 output, for both formats
)

// HashOptions chooses how HashPasswordWith hashes.
type HashOptions struct {
	// Algorithm is the hash format; the zero value is PBKDF2SHA512.
	Algorithm HashAlgorithm
	// Iterations is the PBKDF2 iteration count; 0 means DefaultIterations. Ignored for
	// SHA512.
	Iterations int
}

// HashPassword returns password hashed the way mosquitto_passwd 2.0 does by default:
// `$7$101$<salt>$<hash>`, PBKDF2-HMAC-SHA512 with a random 12-byte salt.
func HashPassword(password []byte) (string, error) {
	return HashPasswordWith(password, HashOptions{})
}

// HashPasswordWith returns password hashed with a fresh random salt as o asks, in the
// text form of a password file entry (without the username).
func HashPasswordWith(password []byte, o HashOptions) (string, error) {
	salt := make([]byte, saltLen)
	_, _ = rand.Read(salt) // crypto/rand.Read always fills salt and never returns an error
	h := hash{alg: o.Algorithm, iterations: o.Iterations, salt: salt}
	switch o.Algorithm {
	case PBKDF2SHA512:
		if h.iterations == 0 {
			h.iterations = DefaultIterations
		}
		if h.iterations < 0 {
			return "", fmt.Errorf("auth: hash password: iterations %d, want > 0", o.Iterations)
		}
	case SHA512:
	default:
		return "", fmt.Errorf("auth: hash password: unknown algorithm %v", o.Algorithm)
	}
	sum, err := h.compute(password, hashLen)
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	h.sum = sum
	return h.String(), nil
}

// hash is one decoded password hash.
type hash struct {
	alg        HashAlgorithm
	iterations int // PBKDF2SHA512 only
	salt       []byte
	sum        []byte
}

// String encodes h as mosquitto_passwd does: standard base64 with padding.
func (h hash) String() string {
	enc := base64.StdEncoding
	if h.alg == SHA512 {
		return "$6$" + enc.EncodeToString(h.salt) + "$" + enc.EncodeToString(h.sum)
	}
	return "$7$" + strconv.Itoa(h.iterations) + "$" + enc.EncodeToString(h.salt) + "$" + enc.EncodeToString(h.sum)
}

// compute hashes password with h's algorithm, iterations and salt.
func (h hash) compute(password []byte, n int) ([]byte, error) {
	if h.alg == SHA512 {
		d := sha512.New()
		d.Write(password) // a hash.Hash never returns a write error
		d.Write(h.salt)
		return d.Sum(nil), nil
	}
	return pbkdf2.Key(sha512.New, string(password), h.salt, h.iterations, n)
}

// verify reports whether password hashes to h.sum, comparing in constant time.
func (h hash) verify(password []byte) bool {
	sum, err := h.compute(password, len(h.sum))
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(sum, h.sum) == 1
}

// parseHash decodes the text after "username:" in a password file.
func parseHash(s string) (hash, error) {
	parts := strings.Split(s, "$")
	if len(parts) < 2 || parts[0] != "" {
		return hash{}, errors.New("password is not a $6$ or $7$ hash (a plain-text file? convert it with `skein passwd -U`)")
	}
	var h hash
	var salt, sum string
	switch parts[1] {
	case "6":
		if len(parts) != 4 {
			return hash{}, errors.New("malformed $6$ hash: want $6$<salt>$<hash>")
		}
		h.alg, salt, sum = SHA512, parts[2], parts[3]
	case "7":
		if len(parts) != 5 {
			return hash{}, errors.New("malformed $7$ hash: want $7$<iterations>$<salt>$<hash>")
		}
		n, err := strconv.Atoi(parts[2])
		if err != nil || n <= 0 {
			return hash{}, fmt.Errorf("malformed $7$ hash: iterations %q, want a number > 0", parts[2])
		}
		h.alg, h.iterations, salt, sum = PBKDF2SHA512, n, parts[3], parts[4]
	default:
		return hash{}, fmt.Errorf("unknown hash type $%s$ (Skein, like Mosquitto 2.0, reads $6$ and $7$)", parts[1])
	}
	var err error
	if h.salt, err = decodeBase64(salt); err != nil || len(h.salt) == 0 {
		return hash{}, errors.New("malformed hash: salt is not base64")
	}
	if h.sum, err = decodeBase64(sum); err != nil {
		return hash{}, errors.New("malformed hash: hash is not base64")
	}
	if len(h.sum) != hashLen {
		return hash{}, fmt.Errorf("malformed hash: %d hash bytes, want %d", len(h.sum), hashLen)
	}
	return h, nil
}

// decodeBase64 decodes standard base64, padded as mosquitto_passwd writes it or not.
func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// ParseError is a syntax error in a password or ACL file. Its text is
// "file:line: message", or "line N: message" when the file has no name.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// maxLine bounds one line of a password or ACL file.
const maxLine = 1 << 20

// newLineScanner returns a scanner over r's lines that accepts lines up to maxLine.
func newLineScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	return sc
}

// scanRawLines splits at "\n" like bufio.ScanLines but keeps a CR before it, so that
// PasswordEditor writes unchanged lines back byte for byte.
func scanRawLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// PasswordFile is a parsed Mosquitto password file: usernames and their password
// hashes. It is immutable once parsed and safe for concurrent use.
type PasswordFile struct {
	name  string
	users map[string]hash
	order []string // usernames in order of first appearance, each once
}

// LoadPasswordFile reads and parses the password file at path.
func LoadPasswordFile(path string) (*PasswordFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: password file: %w", err)
	}
	defer f.Close() // read-only: a close error cannot lose data
	return ParsePasswordFile(f, path)
}

// ParsePasswordFile parses a Mosquitto password file read from r; name is used in
// errors. Each line is `username:hash` with a $6$ or $7$ hash (see HashAlgorithm).
// Blank lines and lines starting with # are skipped, leading and trailing blanks and a
// CR before the newline are ignored, as Mosquitto does. When a user appears twice the
// last line wins, as in Mosquitto. A malformed line is an error (*ParseError naming
// the file and line) rather than a dropped entry, so a typo cannot lock a user out
// silently; errors never quote the hash.
func ParsePasswordFile(r io.Reader, name string) (*PasswordFile, error) {
	pf := &PasswordFile{name: name, users: make(map[string]hash)}
	sc := newLineScanner(r)
	for n := 1; sc.Scan(); n++ {
		s := strings.Trim(sc.Text(), " \t\r")
		if s == "" || s[0] == '#' {
			continue
		}
		user, enc, ok := strings.Cut(s, ":")
		if !ok {
			return nil, &ParseError{name, n, "want username:hash, found no ':'"}
		}
		if user == "" {
			return nil, &ParseError{name, n, "empty username"}
		}
		h, err := parseHash(enc)
		if err != nil {
			return nil, &ParseError{name, n, fmt.Sprintf("user %q: %v", user, err)}
		}
		if _, dup := pf.users[user]; !dup {
			pf.order = append(pf.order, user)
		}
		pf.users[user] = h
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: read password file %s: %w", name, err)
	}
	return pf, nil
}

// dummyHash is verified for unknown users so that Check takes about as long for a
// username that does not exist as for a wrong password.
var dummyHash = hash{alg: PBKDF2SHA512, iterations: DefaultIterations, salt: make([]byte, saltLen), sum: make([]byte, hashLen)}

// Check reports whether password is username's password. The hash comparison is
// constant-time, and an unknown username costs one hash too, so timing tells neither
// which users exist nor how much of a hash matched.
func (f *PasswordFile) Check(username string, password []byte) bool {
	h, ok := f.users[username]
	if !ok {
		dummyHash.verify(password)
		return false
	}
	return h.verify(password)
}

// Users returns the usernames in the file, in the order they first appear.
func (f *PasswordFile) Users() []string {
	return append([]string(nil), f.order...)
}

// Name returns the name the file was parsed under (its path for LoadPasswordFile).
func (f *PasswordFile) Name() string { return f.name }

// PasswordEditor holds a password file as lines, for tools (`skein passwd`) that add,
// change or delete users: every line it does not change is written back byte for byte,
// comments and blank lines included, and a changed user keeps its place in the file.
// It does not validate hashes, so it can edit files Mosquitto tolerates and plain-text
// files before Upgrade. The zero value is an empty file. It is not safe for concurrent
// use.
type PasswordEditor struct {
	lines []string // without "\n"; a CR of a CRLF file stays
}

// ReadPasswordEditor reads a password file from r for editing.
func ReadPasswordEditor(r io.Reader) (*PasswordEditor, error) {
	e := &PasswordEditor{}
	sc := newLineScanner(r)
	sc.Split(scanRawLines)
	for sc.Scan() {
		e.lines = append(e.lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: read password file: %w", err)
	}
	return e, nil
}

// lineUser returns the username of an entry line, split as ParsePasswordFile splits
// it, and the rest after the colon (with a CR of CRLF removed). ok is false for blank
// lines, comments and lines without a colon.
func lineUser(line string) (user, rest string, ok bool) {
	s := strings.TrimLeft(strings.TrimSuffix(line, "\r"), " \t")
	if s == "" || s[0] == '#' {
		return "", "", false
	}
	return strings.Cut(s, ":")
}

// Set makes encodedHash (from HashPassword) username's password. Each line of username
// is replaced in place; when there is none, a line is appended. It reports whether
// username was already present.
func (e *PasswordEditor) Set(username, encodedHash string) (replaced bool) {
	entry := username + ":" + encodedHash
	for i, l := range e.lines {
		if u, _, ok := lineUser(l); ok && u == username {
			e.lines[i] = entry
			replaced = true
		}
	}
	if !replaced {
		e.lines = append(e.lines, entry)
	}
	return replaced
}

// Delete removes every line of username and reports whether there was one.
func (e *PasswordEditor) Delete(username string) (deleted bool) {
	kept := e.lines[:0]
	for _, l := range e.lines {
		if u, _, ok := lineUser(l); ok && u == username {
			deleted = true
			continue
		}
		kept = append(kept, l)
	}
	e.lines = kept
	return deleted
}

// Upgrade treats every entry as `username:plain-text password` and replaces the
// password with hashFn's output, as mosquitto_passwd -U does. The password is all text
// after the first colon (a CR of CRLF excluded). Like mosquitto_passwd it cannot tell
// an already hashed password from a plain one: upgrading twice hashes the hashes.
// Blank lines and comments are kept. A line without a colon is a *ParseError (with
// an empty File) and leaves e unchanged.
func (e *PasswordEditor) Upgrade(hashFn func(password []byte) (string, error)) error {
	out := make([]string, len(e.lines))
	for i, l := range e.lines {
		s := strings.TrimSpace(l)
		if s == "" || s[0] == '#' {
			out[i] = l
			continue
		}
		user, pass, ok := lineUser(l)
		if !ok {
			return &ParseError{Line: i + 1, Msg: "want username:password, found no ':'"}
		}
		h, err := hashFn([]byte(pass))
		if err != nil {
			return fmt.Errorf("line %d: %w", i+1, err)
		}
		out[i] = user + ":" + h
	}
	e.lines = out
	return nil
}

// Users returns the usernames of e's entry lines in file order, each once.
func (e *PasswordEditor) Users() []string {
	var users []string
	seen := make(map[string]bool)
	for _, l := range e.lines {
		if u, _, ok := lineUser(l); ok && !seen[u] {
			seen[u] = true
			users = append(users, u)
		}
	}
	return users
}

// Bytes returns the file's content: every line followed by "\n".
func (e *PasswordEditor) Bytes() []byte {
	var b bytes.Buffer
	for _, l := range e.lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
}
