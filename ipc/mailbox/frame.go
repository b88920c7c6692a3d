package mailbox

import "github.com/ipclab/ipclab/ipc/mailbox/internal/wire"

// FrameError reports a malformed frame: which rule it broke (Reason) and its size in
// bytes (Size). It matches ipc.ErrInvalid. Recv discards such a frame, but nothing
// else: the next receive returns the next message.
type FrameError = wire.FrameError

// FrameOverhead is the most a frame adds to a payload in the kernel object: its
// header and the longest reply-to address. A queue whose messages hold m bytes carries
// payloads of up to m - FrameOverhead bytes.
const FrameOverhead = wire.HeaderSize + wire.MaxAddr
