package rpc

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Exactly-once: a reply cache whose completed entries are records in an
// append-only file, each written and fdatasync'ed before its reply is sent, so that a
// server restarted after a crash (SIGKILL included) loads them and answers a
// retransmission from the file without running the handler again.
//
// Record layout (big-endian):
//
//	magic u32 "RPC1" | length u32 (of what follows the crc) | crc32c u32 (of what follows)
//	client len u16 + bytes | xid u32 | prog u32 | vers u32 | proc u32
//	effect len u32 + bytes | reply len u32 + bytes
//
// A record that is cut short or fails its checksum (a crash in the middle of the
// write) ends the log: it and whatever follows are truncated away when the server
// opens the file.

const durableMagic = 0x52504331 // "RPC1"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Effect is a committed effect of a call, as WithDurableReplies's replay sees it.
type Effect struct {
	Client           string // transport and client address, as in the reply cache
	XID              uint32
	Prog, Vers, Proc uint32
	Data             []byte // what the handler gave Call.Effect; valid during the callback
}

// WithDurableReplies makes the server's reply cache exactly-once (see the package
// doc): every completed call is a record in the append-only file at path (created
// 0600, close-on-exec), written with its reply and the handler's effect (Call.Effect)
// in one write(2) and made durable with fdatasync(2) before the reply is sent. When
// the server starts, the records already in the file fill the reply cache (a
// retransmission of a call the previous server completed is answered from it, the
// handler not run) and replay is called with each record's effect, in the order
// they were committed, so the application rebuilds the state its handlers keep.
// Without WithReplyCache the cache has 4096 entries and DefaultCacheAge. The file
// grows by one record per call; Server.RemoveLog deletes it.
func WithDurableReplies(path string, replay func(Effect) error) ServerOption {
	return func(c *serverConfig) { c.durablePath, c.replay, c.durable = path, replay, true }
}

// durableLog is the file behind an exactly-once reply cache.
type durableLog struct {
	f    *os.File
	path string
	buf  []byte
}

// openDurable opens (creating) the log at path, loads its records into cache and
// replays their effects, and truncates a torn tail.
func openDurable(path string, cache *replyCache, replay func(Effect) error) (*durableLog, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, opErr("open reply log", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, opErr("read reply log", path, err)
	}
	good, err := loadRecords(data, cache, replay)
	if err != nil {
		f.Close()
		return nil, opErr("replay reply log", path, err)
	}
	if good < len(data) {
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, opErr("truncate reply log", path, err)
		}
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		f.Close()
		return nil, opErr("open reply log", path, err)
	}
	return &durableLog{f: f, path: path}, nil
}

// loadRecords enters the whole records at the start of data into cache and
// replays their effects; it returns the length of those records.
func loadRecords(data []byte, cache *replyCache, replay func(Effect) error) (int, error) {
	good := 0
	for good < len(data) {
		e, reply, n, ok := decodeRecord(data[good:])
		if !ok {
			break
		}
		cache.load(cacheKey{client: e.Client, xid: e.XID, prog: e.Prog, vers: e.Vers, proc: e.Proc}, reply)
		if replay != nil {
			if err := replay(e); err != nil {
				return good, err
			}
		}
		good += n
	}
	return good, nil
}

// decodeRecord decodes the record at the start of b, returning its length.
func decodeRecord(b []byte) (e Effect, reply []byte, n int, ok bool) {
	if len(b) < 12 || binary.BigEndian.Uint32(b) != durableMagic {
		return e, nil, 0, false
	}
	l := int(binary.BigEndian.Uint32(b[4:]))
	if l > len(b)-12 || crc32.Checksum(b[12:12+l], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return e, nil, 0, false
	}
	r := b[12 : 12+l]
	if len(r) < 2 {
		return e, nil, 0, false
	}
	cl := int(binary.BigEndian.Uint16(r))
	r = r[2:]
	if len(r) < cl+16+4 {
		return e, nil, 0, false
	}
	e.Client = string(r[:cl])
	r = r[cl:]
	e.XID, e.Prog, e.Vers, e.Proc = binary.BigEndian.Uint32(r), binary.BigEndian.Uint32(r[4:]), binary.BigEndian.Uint32(r[8:]), binary.BigEndian.Uint32(r[12:])
	r = r[16:]
	el := int(binary.BigEndian.Uint32(r))
	r = r[4:]
	if len(r) < el+4 {
		return e, nil, 0, false
	}
	e.Data, r = r[:el], r[el:]
	rl := int(binary.BigEndian.Uint32(r))
	r = r[4:]
	if len(r) != rl {
		return e, nil, 0, false
	}
	return e, r, 12 + l, true
}

// commit appends the record of a completed call and makes it durable.
func (d *durableLog) commit(key cacheKey, effect, reply []byte) error {
	d.buf = appendRecord(d.buf[:0], key, effect, reply)
	if _, err := d.f.Write(d.buf); err != nil {
		return opErr("write reply log", d.path, err)
	}
	if err := unix.Fdatasync(int(d.f.Fd())); err != nil {
		return opErr("fdatasync reply log", d.path, err)
	}
	return nil
}

// appendRecord appends the log record of a completed call to b.
func appendRecord(b []byte, key cacheKey, effect, reply []byte) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, durableMagic)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(key.client)))
	b = append(b, key.client...)
	b = binary.BigEndian.AppendUint32(b, key.xid)
	b = binary.BigEndian.AppendUint32(b, key.prog)
	b = binary.BigEndian.AppendUint32(b, key.vers)
	b = binary.BigEndian.AppendUint32(b, key.proc)
	b = binary.BigEndian.AppendUint32(b, uint32(len(effect)))
	b = append(b, effect...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(reply)))
	b = append(b, reply...)
	r := b[start:]
	binary.BigEndian.PutUint32(r[4:], uint32(len(r)-12))
	binary.BigEndian.PutUint32(r[8:], crc32.Checksum(r[12:], castagnoli))
	return b
}

func (d *durableLog) close() error { return d.f.Close() }

// Effect records b as the call's effect: with WithDurableReplies it is written in
// the same record as the call's reply, in one write made durable before the reply
// is sent, and given back to the replay function when a server starts on the file.
// A handler that makes its effects only through Effect (and applies them to its
// state in memory, which replay rebuilds) has them happen exactly once per call:
// a crash before the record leaves neither the effect nor the reply, and the
// retransmitted call runs the handler again; a crash after it leaves both. A second
// call replaces the first. Without WithDurableReplies it is an error matching
// ipc.ErrInvalid.
func (c *Call) Effect(b []byte) error {
	if !c.durable {
		return invalid("effect", "", "the server has no durable reply log (WithDurableReplies)")
	}
	if len(b) > 1<<30 {
		return invalid("effect", "", "effect of %d bytes", len(b))
	}
	c.effect = append(c.effect[:0], b...)
	return nil
}

// RemoveLog closes the server (Close) and deletes its durable reply log.
func (s *Server) RemoveLog() error {
	err := s.Close()
	if s.log == nil {
		return err
	}
	if rerr := os.Remove(s.log.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, opErr("remove reply log", s.log.path, rerr))
	}
	return err
}
