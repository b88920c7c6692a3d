package doors

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// region is one connection's shared-memory area: a memfd the client creates
// (MFD_CLOEXEC|MFD_ALLOW_SEALING) and seals against shrinking, so that no side's
// mapping can ever reach past the end of the file (no SIGBUS), and whose further
// sealing is itself sealed (F_SEAL_SEAL), so the peer cannot freeze it. Either side
// may grow it with ftruncate; a side remaps when a frame says the data is longer
// than its mapping, after fstat confirms the file really is that long. Data read
// from it is copied into private memory before anyone looks at it (no double
// fetch).
type region struct {
	fd  int
	mem []byte
}

const shmSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_SEAL

// newRegion creates the client's region (empty until first used).
func newRegion() (*region, error) {
	fd, err := unix.MemfdCreate("ipclab-door", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, ipc.Wrap("memfd_create", "ipclab-door", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, shmSeals); err != nil {
		unix.Close(fd)
		return nil, ipc.Wrap("fcntl F_ADD_SEALS", "ipclab-door", err)
	}
	return &region{fd: fd}, nil
}

// adoptRegion checks a received descriptor (owned by the caller until this
// succeeds): a file sealed against shrinking.
func adoptRegion(fd int) (*region, error) {
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, ipc.Wrap("fcntl F_GET_SEALS", "door shm", err)
	}
	if seals&unix.F_SEAL_SHRINK == 0 {
		return nil, fmt.Errorf("door shm region is not sealed against shrinking: %w", ErrProtocol)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, ipc.Wrap("fstat", "door shm", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("door shm region is not a regular file: %w", ErrProtocol)
	}
	return &region{fd: fd}, nil
}

// ensure makes at least n bytes mapped; grow allows extending the file up to limit.
func (r *region) ensure(n int, grow bool, limit int) error {
	if n <= len(r.mem) {
		return nil
	}
	if n > limit {
		return fmt.Errorf("shared region of %d bytes over the limit %d: %w", n, limit, ErrTooBig)
	}
	var st unix.Stat_t
	if err := unix.Fstat(r.fd, &st); err != nil {
		return ipc.Wrap("fstat", "door shm", err)
	}
	size := int(st.Size)
	if size < n {
		if !grow {
			return fmt.Errorf("shared region holds %d bytes, frame says %d: %w", size, n, ErrProtocol)
		}
		size = roundUp(n)
		if err := unix.Ftruncate(r.fd, int64(size)); err != nil {
			return ipc.Wrap("ftruncate", "door shm", err)
		}
	}
	size = min(size, max(roundUp(limit), n)) // never map more than we accept
	if r.mem != nil {
		if err := unix.Munmap(r.mem); err != nil {
			return ipc.Wrap("munmap", "door shm", err)
		}
		r.mem = nil
	}
	mem, err := unix.Mmap(r.fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return ipc.Wrap("mmap", "door shm", err)
	}
	r.mem = mem
	return nil
}

// roundUp rounds n up to a power of two of at least 64 KiB, so a growing region is
// remapped a few times only.
func roundUp(n int) int {
	s := 64 << 10
	for s < n {
		s <<= 1
	}
	return s
}

func (r *region) close() {
	if r == nil {
		return
	}
	if r.mem != nil {
		_ = unix.Munmap(r.mem)
		r.mem = nil
	}
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

// file returns the region's descriptor for sending.
func (r *region) file() int { return r.fd }

// cachedChunk is the most copyShared moves in one copy: the runtime's memmove
// switches to non-temporal stores from 1 MiB on amd64, which leave the data out of
// the cache just before the peer reads it.
const cachedChunk = 512 << 10

// copyShared copies src to dst (as copy does) in pieces below the runtime's
// non-temporal threshold, so that data written for the peer, or read just after the
// peer wrote it, stays in the cache the two processes share.
func copyShared(dst, src []byte) int {
	n := min(len(dst), len(src))
	for off := 0; off < n; off += cachedChunk {
		end := min(off+cachedChunk, n)
		copy(dst[off:end], src[off:end])
	}
	return n
}
