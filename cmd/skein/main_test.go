package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// binDir holds the skein binaries built for this test run; TestMain removes it.
var binDir string

// TestMain checks for leaked goroutines (every child process must be waited for) and
// removes the built binaries afterwards. The build itself happens on first use
// (skeinBinary), because goleak.VerifyTestMain runs the tests itself.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "skein-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "skein tests:", err)
		os.Exit(1)
	}
	binDir = dir
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		_ = os.RemoveAll(dir) // best effort: a leftover temp dir is harmless
		os.Exit(code)
	}))
}

// builtBinary is one `go build` of this package, done at most once per test run.
type builtBinary struct {
	once sync.Once
	path string
	err  error
}

var (
	buildsMu sync.Mutex // guards builds
	builds   = map[string]*builtBinary{}
)

// skeinBinary returns the path of the skein binary, built once per test run.
func skeinBinary(t testing.TB) string {
	t.Helper()
	return buildSkein(t, "")
}

// buildSkein builds the skein command with the given -ldflags (once per distinct
// value) and returns the binary's path. When the tests run with -race, so is the
// binary: a data race in the broker then shows in its stderr and exit code 66.
func buildSkein(t testing.TB, ldflags string) string {
	t.Helper()
	buildsMu.Lock()
	b := builds[ldflags]
	if b == nil {
		b = &builtBinary{path: filepath.Join(binDir, fmt.Sprintf("skein-%d", len(builds)))}
		builds[ldflags] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() {
		args := []string{"build", "-o", b.path}
		if raceEnabled() {
			args = append(args, "-race")
		}
		if ldflags != "" {
			args = append(args, "-ldflags", ldflags)
		}
		args = append(args, ".")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go %v: %v\n%s", args, err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("build skein: %v", b.err)
	}
	return b.path
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
