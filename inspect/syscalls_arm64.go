package inspect

// archCalls are the IPC calls arm64 has besides those of ipcCalls: none, as it only
// has the newer forms (ppoll, pselect6, epoll_pwait, openat).
var archCalls = map[int]callShape{}
