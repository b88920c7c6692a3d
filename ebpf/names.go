//go:build linux && amd64

package ebpf

import "sort"

func sortRows(rows []Row) {
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Primitive != rows[j].Primitive {
			return rows[i].Primitive < rows[j].Primitive
		}
		return opOrder(rows[i].Op) < opOrder(rows[j].Op)
	})
}

// Operation names, indexed by the kernel side's op code.
var opNames = [...]string{
	0: "", 1: "read", 2: "write", 3: "send", 4: "recv", 5: "msgsnd", 6: "msgrcv",
	7: "semop", 8: "mq_send", 9: "mq_recv", 10: "epoll_wait", 11: "splice", 12: "vmsplice",
}

func opOrder(name string) int {
	for i, n := range opNames {
		if n == name {
			return i
		}
	}
	return len(opNames)
}

// Names of the classified primitives, indexed by the kernel side's code.
var primNames = [...]string{
	0: "", 1: "pipe", 2: "fifo", 3: "unix-stream", 4: "unix-dgram", 5: "unix-seqpacket",
	6: "tcp", 7: "udp", 8: "inet-other", 9: "posixmq", 10: "sysv-msg", 11: "sysv-sem",
	12: "epoll",
}
