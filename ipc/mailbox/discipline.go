package mailbox

import "fmt"

// Discipline is how long a send waits: the synchronicity axis of the message-passing
// model. Each one is a guarantee about where the message is when the call returns.
//
//	discipline   MPI call  returns when                            survives the sender's death
//	NonBlocking  -         at once: stored in the kernel, or        yes (if stored)
//	                       ipc.ErrWouldBlock if that would wait
//	Buffered     Bsend     stored in the kernel, if it has room     yes if stored; no while
//	                       and nothing is buffered before it;       buffered (a goroutine
//	                       otherwise copied into this handle's      flushes the buffer)
//	                       send buffer
//	Receipt      Send      the kernel object (mailbox queue or the  yes
//	                       receiver's socket) has stored it
//	Delivery     Ssend     a receiver has taken it (its Recv        yes
//	                       returned it and acknowledged)
//	Response     Sendrecv  the receiver's reply has arrived         yes
//
// Receipt is the kernel's own acknowledgement: msgsnd, mq_timedsend or sendmsg has
// returned, so the message sits in the object's store and no longer depends on the
// sender. Delivery and Response cost a frame back from the receiver (through the
// sender's reply port, or back along a link).
type Discipline uint8

// Send disciplines.
const (
	NonBlocking Discipline = iota + 1
	Buffered
	Receipt
	Delivery
	Response
)

var disciplineNames = [...]string{"", "nonblocking", "buffered", "receipt", "delivery", "response"}

func (d Discipline) valid() bool { return d >= NonBlocking && d <= Response }

// String returns the discipline's name ("receipt").
func (d Discipline) String() string {
	if d.valid() {
		return disciplineNames[d]
	}
	return fmt.Sprintf("Discipline(%d)", uint8(d))
}

// ParseDiscipline parses the names String returns.
func ParseDiscipline(s string) (Discipline, error) {
	for i, n := range disciplineNames {
		if i > 0 && n == s {
			return Discipline(i), nil
		}
	}
	return 0, fmt.Errorf("unknown discipline %q: %w", s, errInvalid)
}
