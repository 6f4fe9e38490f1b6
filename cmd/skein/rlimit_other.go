//go:build !unix

package main

// raiseFileLimit does nothing where there is no RLIMIT_NOFILE; 0 means unknown.
func raiseFileLimit() uint64 { return 0 }
