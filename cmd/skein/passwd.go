package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/skein-mq/skein/node/auth"
)

// skein passwd is mosquitto_passwd (2.0) under another name: the same options, files,
// prompts, messages and exit codes, so that scripts written for mosquitto_passwd work
// unchanged. Its options are parsed by hand, as mosquitto_passwd does: they must come
// before the file name, and each is a word of its own.

const passwdUsage = `skein passwd is a tool for managing password files for skein and mosquitto.

Usage: skein passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c | -D] passwordfile username
       skein passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c] -b passwordfile username password
       skein passwd -U passwordfile
 -b : run in batch mode to allow passing passwords on the command line.
 -c : create a new password file. This will overwrite existing files.
 -D : delete the username rather than adding/updating its password.
 -H : specify the hashing algorithm. Defaults to sha512-pbkdf2, which is recommended.
      Mosquitto 1.6 and earlier defaulted to sha512.
 -I : specify the number of sha512-pbkdf2 iterations. Defaults to 101, as mosquitto_passwd.
 -U : update a plain text password file to use hashed passwords.

The files are those of mosquitto_passwd; see https://mosquitto.org/ for more information.
`

// Exit codes of skein passwd, those of mosquitto_passwd 2.0.
const (
	passwdExitOK       = 0
	passwdExitError    = 1
	passwdExitMismatch = 2 // "Passwords do not match."
)

// errPasswdUsage asks runPasswd to print the usage text.
var errPasswdUsage = errors.New("usage")

// passwdFail is an argument error of skein passwd: the whole line to print on stderr,
// worded as mosquitto_passwd words it.
type passwdFail string

func (f passwdFail) Error() string { return string(f) }

// passwdOptions are the settings of one skein passwd run.
type passwdOptions struct {
	batch, create, delete, upgrade bool
	hash                           auth.HashOptions
	file, username, password       string // password only with batch
}

// parsePasswdArgs parses args like mosquitto_passwd 2.0. Its errors are
// errPasswdUsage or the whole line to print on stderr.
func parsePasswdArgs(args []string) (*passwdOptions, error) {
	o := &passwdOptions{}
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "-"); i++ {
		switch args[i] {
		case "-b":
			o.batch = true
		case "-c":
			o.create = true
		case "-D":
			o.delete = true
		case "-U":
			o.upgrade = true
		case "-H":
			if i+1 >= len(args) {
				return nil, passwdFail("Error: -H argument given but not enough other arguments.")
			}
			i++
			switch args[i] {
			case "sha512-pbkdf2":
				o.hash.Algorithm = auth.PBKDF2SHA512
			case "sha512":
				o.hash.Algorithm = auth.SHA512
			default:
				return nil, passwdFail("Error: Unknown hash type '" + args[i] + "'")
			}
		case "-I":
			if i+1 >= len(args) {
				return nil, passwdFail("Error: -I argument given but not enough other arguments.")
			}
			i++
			n, err := strconv.Atoi(args[i])
			if err != nil || n <= 0 {
				return nil, passwdFail("Error: Number of iterations must be > 0.")
			}
			o.hash.Iterations = n
		default:
			return nil, errPasswdUsage
		}
	}
	switch {
	case o.create && o.delete:
		return nil, passwdFail("Error: -c and -D cannot be used together.")
	case o.create && o.upgrade:
		return nil, passwdFail("Error: -c and -U cannot be used together.")
	case o.delete && o.upgrade:
		return nil, passwdFail("Error: -D and -U cannot be used together.")
	case o.batch && o.delete:
		return nil, passwdFail("Error: -b and -D cannot be used together.")
	}

	// Like mosquitto_passwd, -c and -D ignore extra words; the plain forms do not.
	rest := args[i:]
	switch {
	case o.create && o.batch:
		if len(rest) < 3 {
			return nil, passwdFail("Error: -c argument given but password file, username, or password missing.")
		}
	case o.create:
		if len(rest) < 2 {
			return nil, passwdFail("Error: -c argument given but password file or username missing.")
		}
	case o.delete:
		if len(rest) < 2 {
			return nil, passwdFail("Error: -D argument given but password file or username missing.")
		}
	case o.upgrade:
		if len(rest) != 1 {
			return nil, passwdFail("Error: -U argument given but password file missing.")
		}
		o.file = rest[0]
		return o, nil
	case o.batch:
		if len(rest) != 3 {
			return nil, errPasswdUsage
		}
	default:
		if len(rest) != 2 {
			return nil, errPasswdUsage
		}
	}
	o.file, o.username = rest[0], rest[1]
	if o.batch {
		o.password = rest[2]
	}
	switch {
	case strings.Contains(o.username, ":"):
		return nil, passwdFail("Error: Username must not contain the ':' character.")
	// mosquitto_passwd writes the next three; no client could log in with them.
	case o.username == "":
		return nil, passwdFail("Error: Username must not be empty.")
	case strings.ContainsAny(o.username, "\r\n"):
		return nil, passwdFail("Error: Username must not contain a line break.")
	case !utf8.ValidString(o.username):
		return nil, passwdFail("Error: Username must be valid UTF-8.")
	}
	return o, nil
}

// runPasswd is `skein passwd`: it manages a Mosquitto password file as mosquitto_passwd
// 2.0 does and returns the exit code. Without -b it prompts on stdout and reads the
// password twice from stdin, without echo when stdin is a terminal. Usage goes to
// stdout, errors to stderr, as mosquitto_passwd does.
func runPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parsePasswdArgs(args)
	if errors.Is(err, errPasswdUsage) {
		fmt.Fprint(stdout, passwdUsage)
		return passwdExitError
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return passwdExitError
	}
	pr := &passwordReader{in: stdin, out: stdout}
	if o.create {
		return passwdCreate(o, pr, stderr)
	}
	old, err := os.ReadFile(o.file)
	if err != nil {
		fmt.Fprintf(stderr, "Error: Unable to open password file %s. %s.\n", o.file, osErrorText(err))
		return passwdExitError
	}
	ed, err := auth.ReadPasswordEditor(bytes.NewReader(old))
	if err != nil {
		fmt.Fprintf(stderr, "Error: Unable to read password file %s. %s.\n", o.file, osErrorText(err))
		return passwdExitError
	}
	switch {
	case o.delete:
		if !ed.Delete(o.username) {
			fmt.Fprintf(stderr, "Warning: User %s not found in password file.\n", o.username)
			return passwdExitError
		}
	case o.upgrade:
		err := ed.Upgrade(func(pw []byte) (string, error) { return auth.HashPasswordWith(pw, o.hash) })
		if pe, ok := errors.AsType[*auth.ParseError](err); ok {
			fmt.Fprintf(stderr, "Error: Corrupt password file at line %d.\n", pe.Line)
			return passwdExitError
		}
		if err != nil {
			fmt.Fprintf(stderr, "Error: %v.\n", err)
			return passwdExitError
		}
	default:
		password := o.password
		if !o.batch {
			var code int
			if password, code = pr.twice(stderr); code != passwdExitOK {
				return code
			}
		}
		h, err := auth.HashPasswordWith([]byte(password), o.hash)
		if err != nil {
			fmt.Fprintf(stderr, "Error: %v.\n", err)
			return passwdExitError
		}
		ed.Set(o.username, h)
	}
	return passwdRewrite(o.file, old, ed.Bytes(), stderr)
}

// passwdCreate writes a new file holding only o.username (-c).
func passwdCreate(o *passwdOptions, pr *passwordReader, stderr io.Writer) int {
	password := o.password
	if !o.batch {
		var code int
		if password, code = pr.twice(stderr); code != passwdExitOK {
			return code
		}
	}
	h, err := auth.HashPasswordWith([]byte(password), o.hash)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v.\n", err)
		return passwdExitError
	}
	var ed auth.PasswordEditor
	ed.Set(o.username, h)
	// 0600: the hashes are worth keeping from other local users. An existing file keeps
	// its mode, owner and group.
	f, err := os.OpenFile(o.file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		_, err = f.Write(ed.Bytes())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "Error: Unable to open file %s for writing. %s.\n", o.file, osErrorText(err))
		return passwdExitError
	}
	return passwdExitOK
}

// passwdRewrite replaces the content of path, old, with updated, as mosquitto_passwd
// does: it saves old to path.tmp, rewrites path in place (so the file keeps its inode,
// mode, owner and any symlink to it) and removes the backup, which holds old hashes,
// once the write succeeded.
func passwdRewrite(path string, old, updated []byte, stderr io.Writer) int {
	backup := path + ".tmp"
	if err := os.WriteFile(backup, old, 0o600); err != nil {
		fmt.Fprintf(stderr, "Error creating backup password file \"%s\", not continuing.\n", backup)
		return passwdExitError
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err == nil {
		_, err = f.Write(updated)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "Error occurred updating password file.")
		fmt.Fprintf(stderr, "Password file may be corrupt, check the backup file: %s.\n", backup)
		return passwdExitError
	}
	if err := os.Remove(backup); err != nil {
		fmt.Fprintf(stderr, "Warning: Unable to remove backup file %s, which holds the old hashes. %s.\n", backup, osErrorText(err))
	}
	return passwdExitOK
}

// osErrorText returns the system's description of err capitalized, like strerror:
// "No such file or directory".
func osErrorText(err error) string {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = pe.Err
	}
	s := err.Error()
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return strings.ToUpper(string(r)) + s[n:]
}

// passwordReader prompts for passwords as mosquitto_passwd does.
type passwordReader struct {
	in    io.Reader
	out   io.Writer
	lines *bufio.Reader // over in when it is not a terminal; made on first use
}

// twice prompts for the password and for it again. On failure it has printed the
// error and returns the exit code.
func (p *passwordReader) twice(stderr io.Writer) (string, int) {
	fmt.Fprint(p.out, "Password: ")
	pw1, ok := p.read()
	if !ok {
		fmt.Fprintln(stderr, "Error: Empty password.")
		return "", passwdExitError
	}
	fmt.Fprint(p.out, "\nReenter password: ")
	pw2, ok := p.read()
	if !ok {
		fmt.Fprintln(stderr, "Error: Empty password.")
		return "", passwdExitError
	}
	fmt.Fprintln(p.out)
	if pw1 != pw2 {
		fmt.Fprintln(stderr, "Error: Passwords do not match.")
		return "", passwdExitMismatch
	}
	return pw1, passwdExitOK
}

// read reads one password: from the terminal without echo, or else one line of input.
// ok is false for an empty password or no input.
func (p *passwordReader) read() (string, bool) {
	if f, isFile := p.in.(*os.File); isFile && term.IsTerminal(int(f.Fd())) {
		b, err := readTerminalPassword(int(f.Fd()))
		return string(b), err == nil && len(b) > 0
	}
	if p.lines == nil {
		p.lines = bufio.NewReader(p.in)
	}
	line, err := p.lines.ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		return "", false
	}
	line = strings.TrimRight(line, "\r\n")
	return line, line != ""
}

// readTerminalPassword reads a line from the terminal fd with echo off. An interrupt
// while it waits turns echo back on before the program exits, so the shell is not
// left without echo.
func readTerminalPassword(fd int) ([]byte, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return nil, err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-sig:
			_ = term.Restore(fd, state) // best effort: the program is exiting anyway
			os.Exit(130)
		case <-done:
		}
	}()
	defer func() {
		signal.Stop(sig)
		close(done)
		<-stopped
	}()
	return term.ReadPassword(fd)
}
