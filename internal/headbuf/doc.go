// Package headbuf holds Buffer, which keeps the first bytes written to it and drops the
// rest: the output of a child process (a health check, a benchmarked daemon) kept for a
// message without letting a chatty child grow memory without bound.
//
// It imports only the standard library.
package headbuf
