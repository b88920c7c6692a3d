package inspect

import "time"

// Options says what Take reads.
type Options struct {
	// PIDs are the processes to inspect; empty means the whole machine. The
	// snapshot keeps the objects they hold or wait on, their waits, and the
	// deadlocks with at least one of them on the cycle.
	PIDs []int
	// ConfirmFor is how long a wait must hold unchanged to count towards a
	// deadlock (default 100 ms).
	ConfirmFor time.Duration
	// MailboxDirs are the mailbox namespace directories to read (default
	// mailbox.DefaultDir()).
	MailboxDirs []string
}
