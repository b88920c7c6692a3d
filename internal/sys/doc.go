// Package sys is ipclab's one system-call boundary: the only package that issues raw
// system calls or uses unsafe. Everything here is a thin wrapper that returns the
// kernel's errno as a unix.Errno; callers wrap it with the operation and object.
//
// Wrappers never retry on EINTR: the callers decide (see internal/wait).
package sys
