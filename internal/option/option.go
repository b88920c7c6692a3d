// Package option applies functional options: the one loop every constructor of
// ipclab runs over its ...Option arguments.
package option

import (
	"fmt"

	"github.com/ipclab/ipclab/ipc"
)

// Apply calls each of opts on c, in order. A nil option is bad input: Apply stops
// there with an error matching ipc.ErrInvalid that names its position, before the
// caller makes any system call.
func Apply[C any, O ~func(*C)](c *C, opts []O) error {
	for i, o := range opts {
		if o == nil {
			return fmt.Errorf("option %d is nil: %w", i, ipc.ErrInvalid)
		}
		o(c)
	}
	return nil
}
