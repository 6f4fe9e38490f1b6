//go:build unix

package main

import "syscall"

// raiseFileLimit lifts the soft limit on open files to the hard limit, as Mosquitto
// users expect of a broker: each connection is a descriptor. (The Go runtime does
// this at start on most systems already; doing it here keeps the promise whatever
// the runtime does.) It returns the limit in force, 0 when unknown.
func raiseFileLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	if r.Cur < r.Max {
		want := r
		want.Cur = r.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
			r = want
		}
	}
	return r.Cur
}
