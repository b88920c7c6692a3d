package inspect

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestIPCCallAMD64(t *testing.T) {
	for _, c := range []struct {
		nr   int
		args [6]uint64
		want callInfo
	}{
		{unix.SYS_POLL, [6]uint64{0xc000, 2, 0xffffffff}, callInfo{Name: "poll", FD: -1, SysVID: -1, For: forAny}},
		{unix.SYS_POLL, [6]uint64{0xc000, 2, 100}, callInfo{Name: "poll", FD: -1, SysVID: -1, For: forAny, Timed: true}},
		{unix.SYS_SELECT, [6]uint64{4, 1, 0, 0, 0}, callInfo{Name: "select", FD: -1, SysVID: -1, For: forAny}},
		{unix.SYS_EPOLL_WAIT, [6]uint64{4, 1, 8, 5}, callInfo{Name: "epoll_wait", FD: 4, SysVID: -1, For: forAny, Timed: true}},
		{unix.SYS_OPEN, [6]uint64{0xc000, 1}, callInfo{Name: "open", FD: -1, SysVID: -1, For: forOpen}},
	} {
		if got, ok := ipcCall(c.nr, c.args); !ok || got != c.want {
			t.Errorf("ipcCall(%d, %x) = %+v, %v; want %+v", c.nr, c.args, got, ok, c.want)
		}
	}
}
