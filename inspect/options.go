package inspect

import "time"

// Options says what Take reads.
type Options struct {
	// PIDs are the processes to inspect; empty means the whole machine.
	PIDs []int
	// ConfirmFor is how long a wait must hold unchanged to count towards a
	// deadlock (default 100 ms).
	ConfirmFor time.Duration
	// MailboxDirs are the mailbox namespace directories to read (default
	// mailbox.DefaultDir()).
	MailboxDirs []string
}
