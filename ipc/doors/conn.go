package doors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/sockets"
)

// Call is one door invocation as its handler sees it.
type Call struct {
	ctx callCtx

	// ID is the call's identifier on its connection.
	ID uint64
	// Data is the argument. It is valid only until the handler returns.
	Data []byte
	// Fds are the descriptors passed with the call (close-on-exec). They belong to
	// the handler, which must close or keep them.
	Fds []int
	// Cred is the calling process's credentials for this very call, as the kernel
	// vouches for them (SCM_CREDENTIALS): correct even when the connection was handed
	// from one process to another. Treat the pid as advisory; see Pidfd.
	Cred sockets.Cred

	conn  *conn
	reply Reply // what Return fills
	rcap  int   // inline reply capacity of the caller
	rmax  int   // largest result the caller accepts
	rfds  int   // most descriptors the caller accepts
	shmOK bool
	big   bool // Data is the connection's large buffer
	inShm bool // Data lies in the shared region (ShmInPlace)
}

// Return builds the call's reply from data and fds without allocating (the
// door_return of Solaris): a handler ends with "return call.Return(data, nil), nil".
// The reply belongs to the call; build at most one per call.
func (c *Call) Return(data []byte, fds []int) *Reply {
	c.reply = Reply{Data: data, Fds: fds}
	return &c.reply
}

// drop forgets the call's data and reply once it is finished, so that its slab (see
// newCall) does not keep them alive.
func (c *Call) drop() {
	c.Data, c.Fds, c.reply, c.conn = nil, nil, Reply{}, nil
}

// Pidfd returns a pidfd for the caller (close-on-exec; the caller of Pidfd closes
// it), race-free: it is the kernel's SO_PEERPIDFD of the connection, returned only
// when the connection was made by path and this call comes from the process that
// made it. Otherwise (a connection from NewClientFile, or one handed to another
// process) the error matches unix.ENOPROTOOPT, as on kernels before 6.5.
func (c *Call) Pidfd() (*os.File, error) {
	if !c.conn.fromPath || c.Cred.Pid != c.conn.peer.Pid {
		return nil, fmt.Errorf("doors: no race-free pidfd for pid %d (connection made by pid %d): %w",
			c.Cred.Pid, c.conn.peer.Pid, unix.ENOPROTOOPT)
	}
	return c.conn.sc.PeerPidfd()
}

// callCtx is a handler's context: cancelled by the caller, by revocation, or when
// the handler returns. It is part of Call, so it costs no allocation of its own.
// Err and cancel, which every call makes, are one atomic operation each; the
// channel is made only if the handler asks for Done.
type callCtx struct {
	state atomic.Uint32 // ctxCancelled | ctxDoneMade
	mu    sync.Mutex    // guards done
	done  chan struct{}
}

const (
	ctxCancelled = 1 << iota
	ctxDoneMade
)

func (x *callCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (x *callCtx) Value(any) any               { return nil }

func (x *callCtx) Done() <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done == nil {
		x.done = make(chan struct{})
		// Whichever of Done and cancel sets its bit second closes the channel.
		if x.state.Or(ctxDoneMade)&ctxCancelled != 0 {
			close(x.done)
		}
	}
	return x.done
}

func (x *callCtx) Err() error {
	if x.state.Load()&ctxCancelled != 0 {
		return context.Canceled
	}
	return nil
}

func (x *callCtx) String() string { return "doors.Call context" }

// cancel cancels the context; it reports whether it was live.
func (x *callCtx) cancel() bool {
	old := x.state.Or(ctxCancelled)
	if old&ctxCancelled != 0 {
		return false
	}
	if old&ctxDoneMade != 0 { // the channel exists: close it (see Done)
		x.mu.Lock()
		close(x.done)
		x.mu.Unlock()
	}
	return true
}

// conn is the server's side of one client connection.
type conn struct {
	// What every call touches comes first, in one cache line.
	d  *Door
	sc *sock
	// running is the call the reading goroutine runs itself (see serve); it is not
	// in calls, so a short call costs no lock and no map operation. If another
	// goroutine takes over reading (takeover), the call moves to calls, where a
	// CANCEL frame can find it.
	running atomic.Pointer[Call]
	revoked atomic.Bool // set under mu
	// others counts the calls of the connection that a goroutine other than its
	// reading one will finish (queued, or taken over), replies included: while
	// there are none, the reading goroutine sends its inline replies from its own
	// buffer without wmu (see finish).
	others    atomic.Int32
	wmu       sync.Mutex   // a frame may span several messages
	threshold atomic.Int64 // shared-region threshold, 0 until the client hands one over
	wbuf      []byte       // header + inline data, under wmu

	fromPath bool
	peer     sockets.Cred

	mu    sync.Mutex
	calls map[uint64]*Call // calls queued for, or running on, pool goroutines

	shmMu   sync.Mutex
	shm     *region
	shmBusy bool       // an in-place call is using the region
	shmFree *sync.Cond // signalled when shmBusy clears (on shmMu)

	// big is a buffer for large arguments (split or shared), reused from call to
	// call: a fresh megabyte per call costs more in page faults than the copy.
	bigMu   sync.Mutex
	big     []byte
	bigBusy bool

	wdSeen *Call // running as the watchdog saw it last tick (watchdog only)
	down   sync.Once
}

// serve is the reading goroutine. It runs short calls itself (see Pool).
func (c *conn) serve(rb *rbuf) {
	d := c.d
	defer d.wg.Done()
	defer d.bufs.Put(rb)
	bg := context.Background()
	for {
		// Receive the next frame; a reply this goroutine left in rb (see replyOwn)
		// goes first, in the same engine call: the door_return pattern, a reply and
		// the wait for the next call (internal/sockio's SendRecvMsg).
		var n, nfds int
		var cred sockets.Cred
		var err error
		if rb.out == 0 {
			n, nfds, cred, err = c.sc.ReadMsgCred(bg, rb.p, rb.fds)
		} else {
			out := rb.p[:rb.out]
			rb.out = 0
			n, nfds, cred, err = c.sc.SendReadMsgCred(bg, out, rb.p, rb.fds)
			if err != nil && isSendError(err) {
				// The reply went nowhere (the client has gone, or revoke shut our
				// sending side down): as for any reply, that is no error of the
				// connection's.
				n, nfds, cred, err = c.sc.ReadMsgCred(bg, rb.p, rb.fds)
			}
		}
		if err != nil {
			if errors.Is(err, ipc.ErrTruncated) { // longer than any frame may be inline
				c.sendError(0, codeProtocol, err.Error())
			}
			c.teardown()
			return
		}
		// The common frame, a plain call (inline data, no descriptors), takes the
		// shortest way; every other frame goes through frame.
		h, body, plain := quickCall(rb.p[:n], uint64(d.cfg.maxData))
		if !plain || nfds != 0 || c.revoked.Load() {
			if !c.frame(rb, n, nfds, cred) {
				return
			}
			continue
		}
		if err := c.admit(cred); err != nil {
			c.sendError(h.id, codePerm, err.Error())
			continue
		}
		if !c.call(rb, h, body, nil, cred) {
			return
		}
	}
}

// testHookTakeover, when set (by the tests: export_test.go), is told of every call
// the watchdog hands over to another goroutine.
var testHookTakeover func(*Door)

// isSendError reports whether err, from sock.Exchange or SendReadMsgCred, is the
// send's.
func isSendError(err error) bool {
	var oe *ipc.OpError
	return errors.As(err, &oe) && oe.Op == "sendmsg"
}

// admit applies the door's policy to the sender of a frame.
func (c *conn) admit(cred sockets.Cred) error {
	err := c.d.cfg.policy(cred)
	if cred.Pid == 0 {
		// No credentials were attached (neither socket had SO_PASSCRED when the frame
		// was sent; the kernel then reports the overflow uid) or the sender is
		// outside our pid namespace: refuse.
		err = fmt.Errorf("frame without sender credentials: %w", ErrPermission)
	}
	return err
}

// frame handles any frame of n bytes in rb (with nfds descriptors in rb.fds) from
// the sender cred. It reports whether the goroutine goes on reading the
// connection.
func (c *conn) frame(rb *rbuf, n, nfds int, cred sockets.Cred) bool {
	d := c.d
	fds := rb.fds[:nfds]
	h, body, err := decodeFrame(rb.p[:n], uint64(d.cfg.maxData))
	if err == nil && int(h.nfds) != nfds {
		err = errFrame(fmt.Sprintf("header says %d descriptors, %d arrived", h.nfds, nfds))
	}
	if err != nil {
		closeFds(fds)
		c.sendError(h.id, codeProtocol, err.Error())
		c.teardown()
		return false
	}
	if c.revoked.Load() { // drain until the client hangs up
		closeFds(fds)
		if h.flags&fSplit != 0 && !c.skip(chunks(h.length)) {
			c.teardown()
			return false
		}
		return true
	}
	if h.kind != kCancel {
		if perr := c.admit(cred); perr != nil {
			closeFds(fds)
			if h.flags&fSplit != 0 && !c.skip(chunks(h.length)) {
				c.teardown()
				return false
			}
			c.sendError(h.id, codePerm, perr.Error())
			return true
		}
	}
	switch h.kind {
	case kCancel:
		c.cancel(h.id)
	case kInfo:
		in := d.Info()
		var b [infoSize]byte
		in.put(b[:])
		c.send(header{kind: kInfo, id: h.id, length: infoSize}, b[:], nil, false, infoSize)
	case kShm:
		if err := c.adoptShm(fds[0], h.aux0); err != nil {
			unix.Close(fds[0])
			c.sendError(0, codeProtocol, err.Error())
			c.teardown()
			return false
		}
	case kDup:
		c.dup(h.id)
	case kCall:
		return c.call(rb, h, body, fds, cred)
	default:
		closeFds(fds)
		c.sendError(h.id, codeProtocol, "unexpected frame kind")
		c.teardown()
		return false
	}
	return true
}

// call takes a CALL frame (admitted by the policy) and runs it on this goroutine
// when the pool has a free slot, or queues it. It reports whether the goroutine
// goes on reading the connection.
func (c *conn) call(rb *rbuf, h header, body []byte, fds []int, cred sockets.Cred) bool {
	d := c.d
	call, err := c.readCall(rb, h, body, fds, cred)
	if err != nil {
		if errors.Is(err, ErrProtocol) {
			c.sendError(h.id, codeProtocol, err.Error())
			c.teardown()
			return false
		}
		c.sendError(h.id, errorCode(err), err.Error())
		return true
	}
	if d.pool.tryAcquire() {
		// Swap: ordered before the loads of revoked (see cancelAll) and of wdParked
		// (see watchdog).
		c.running.Swap(call)
		if c.revoked.Load() { // revoke may have looked at running before the Swap
			return c.abandonRunning(call)
		}
		if d.wdParked.Load() {
			d.wakeWatchdog()
		}
		// false: taken over, another goroutine reads the connection now.
		return c.run(call, rb)
	}
	if !c.register(call) {
		c.abandon(call)
		return true
	}
	if len(body) > 0 && &call.Data[0] == &body[0] {
		call.Data = append([]byte(nil), body...)
	}
	d.wg.Add(1)
	d.pool.enqueue(call)
	return true
}

// abandonRunning gives up call, just made running, because the connection was
// revoked meanwhile. It reports whether the goroutine goes on reading.
func (c *conn) abandonRunning(call *Call) bool {
	taken := !c.running.CompareAndSwap(call, nil)
	if taken { // the watchdog moved it to calls and started a reader
		c.mu.Lock()
		if c.calls[call.ID] == call {
			delete(c.calls, call.ID)
		}
		c.mu.Unlock()
	}
	c.abandon(call)
	c.d.pool.release()
	if taken {
		c.others.Add(-1)
	}
	return !taken // taken: the new reader owns the connection
}

// takeover runs when call has been running on the reading goroutine for
// takeoverDelay (the door's watchdog saw it twice): unless it has just finished,
// it moves to calls and a new goroutine starts reading the connection.
func (c *conn) takeover(call *Call) {
	c.mu.Lock()
	took := c.running.CompareAndSwap(call, nil)
	if took {
		// Counted before the new reader starts: see finish.
		c.others.Add(1)
		if old, dup := c.calls[call.ID]; dup { // as register does
			old.ctx.cancel()
		}
		c.calls[call.ID] = call
	}
	c.mu.Unlock()
	if took {
		if testHookTakeover != nil {
			testHookTakeover(c.d)
		}
		c.d.wg.Add(1)
		go c.serve(c.d.bufs.Get().(*rbuf))
	}
}

// spawnRun runs a queued call in a goroutine of its own (d.wg was counted at
// enqueue).
func (c *conn) spawnRun(call *Call) {
	go func() {
		defer c.d.wg.Done()
		c.run(call, nil)
	}()
}

// run calls the handler, replies, and frees the pool slot. It reports whether the
// call was the reading goroutine's own (running) to the end, not taken over. rb is
// the reading goroutine's buffer when it runs the call itself, nil otherwise.
func (c *conn) run(call *Call, rb *rbuf) bool {
	var rep *Reply
	var err error
	if call.ctx.Err() == nil {
		rep, err = c.d.h(&call.ctx, call)
	} else {
		closeFds(call.Fds) // cancelled before it started: the handler never owned them
	}
	mine := c.finish(call, rep, err, rb)
	c.d.pool.release()
	return mine
}

func (c *conn) register(call *Call) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revoked.Load() {
		return false
	}
	c.others.Add(1) // a pool goroutine will reply: see finish
	if old, dup := c.calls[call.ID]; dup {
		old.ctx.cancel()
	}
	c.calls[call.ID] = call
	return true
}

// cancel is a CANCEL frame: the caller has gone away from call id.
func (c *conn) cancel(id uint64) {
	c.mu.Lock()
	call := c.calls[id]
	delete(c.calls, id)
	c.mu.Unlock()
	if call != nil {
		call.ctx.cancel()
	}
}

// finish sends the result unless the call was cancelled meanwhile (then it goes
// nowhere: the caller has moved on, and call ids keep late replies from being
// taken for another call's). It reports whether call was running, never taken
// over. rb is as for run.
func (c *conn) finish(call *Call, rep *Reply, herr error, rb *rbuf) (mine bool) {
	if mine = c.running.CompareAndSwap(call, nil); !mine {
		c.mu.Lock()
		if c.calls[call.ID] == call {
			delete(c.calls, call.ID)
		}
		c.mu.Unlock()
	}
	live := call.ctx.cancel()
	var fds []int
	var data []byte
	release := false
	if rep != nil {
		data, fds, release = rep.Data, rep.Fds, rep.Release
	}
	switch {
	case !live:
	case herr != nil || len(fds) > call.rfds || len(data) > call.rmax:
		c.refuseReply(call, herr, len(data), len(fds))
	case mine && rb != nil && len(fds) == 0 && len(data) <= min(call.rcap, len(rb.p)-hdrSize) &&
		!(call.shmOK && c.shmSized(len(data))) && c.others.Load() == 0:
		// The reading goroutine ran the call to the end and no other goroutine
		// writes on the connection (no call of it is queued or taken over, and
		// until this goroutine has sent the reply, none can be: it alone registers
		// calls, and the call is no longer running, so no takeover), except revoke,
		// whose frame is one message from wmu's buffer: a one-message reply from
		// the reading goroutine's buffer needs no lock. serve sends it.
		c.replyOwn(rb, call.ID, data)
	default:
		c.send(header{kind: kReply, id: call.ID, nfds: uint16(len(fds)), length: uint64(len(data))}, data, fds, call.shmOK, call.rcap)
	}
	if release {
		closeFds(fds)
	}
	if call.big || call.inShm {
		c.releaseData(call)
	}
	call.drop()
	if !mine {
		c.others.Add(-1) // its writes are done
	}
	return mine
}

// replyOwn builds an inline reply in rb, the reading goroutine's buffer (data may
// lie in it: the argument of an echo), for serve to send.
func (c *conn) replyOwn(rb *rbuf, id uint64, data []byte) {
	n := copy(rb.p[hdrSize:], data) // data never starts before p[hdrSize:]: see Call.Data
	h := header{kind: kReply, id: id, length: uint64(n)}
	h.put(rb.p)
	rb.out = hdrSize + n
	if countOwnReplies {
		c.d.ownReplies.Add(1)
	}
}

// countOwnReplies makes replyOwn count in Door.ownReplies; the tests set it before
// they start any door.
var countOwnReplies bool

// refuseReply answers call with an error frame instead of its reply: the handler
// failed (herr), or its reply is larger than the caller accepts.
func (c *conn) refuseReply(call *Call, herr error, ndata, nfds int) {
	switch {
	case herr != nil:
		c.sendError(call.ID, errorCode(herr), herr.Error())
	case nfds > call.rfds:
		c.sendError(call.ID, codeTooBig, fmt.Sprintf("reply has %d descriptors, the caller accepts %d", nfds, call.rfds))
	default:
		c.sendError(call.ID, codeTooBig, fmt.Sprintf("reply of %d bytes, the caller accepts %d", ndata, call.rmax))
	}
}

// abandon releases what readCall set up for a call that will not run: its
// descriptors, and its data (releaseData).
func (c *conn) abandon(call *Call) {
	closeFds(call.Fds)
	c.releaseData(call)
	call.drop()
}

// releaseData gives back the buffers a call's data occupied: the large buffer, or
// the shared region's in-place claim.
func (c *conn) releaseData(call *Call) {
	c.freeBig(call)
	if call.inShm {
		call.inShm = false
		c.shmMu.Lock()
		c.shmBusy = false
		c.shmFree.Broadcast()
		c.shmMu.Unlock()
	}
}

// readCall gathers a call's data: inline (aliasing the read buffer), split into
// body messages, or from the shared region; limits were checked by decodeFrame
// before anything is allocated.
func (c *conn) readCall(rb *rbuf, h header, body []byte, fds []int, cred sockets.Cred) (*Call, error) {
	call := rb.newCall()
	call.ID, call.Cred, call.conn = h.id, cred, c
	call.rcap, call.rmax, call.rfds, call.shmOK = int(h.aux0), int(h.aux1), int(h.rfds), h.flags&fShmOK != 0
	if len(fds) > 0 {
		if len(fds) > c.d.cfg.maxFds {
			closeFds(fds)
			if h.flags&fSplit != 0 && !c.skip(chunks(h.length)) {
				return nil, ErrProtocol
			}
			if c.d.cfg.refuseFds {
				return nil, ErrFdsRefused
			}
			return nil, ErrTooBig
		}
		call.Fds = append([]int(nil), fds...)
	}
	if p := path(h.flags); p != 0 {
		c.d.argPath[p].Add(1)
	}
	if h.flags&fShm != 0 && c.d.cfg.inPlace {
		c.shmMu.Lock()
		// The previous in-place call may still be finishing on another goroutine
		// (its reply is out, its bookkeeping not yet): wait for it.
		for c.shm != nil && c.shmBusy {
			c.shmFree.Wait()
		}
		err := error(ErrProtocol)
		if c.shm != nil {
			err = c.shm.ensure(int(h.length), false, c.d.cfg.maxData)
		}
		if err == nil {
			call.Data, call.inShm, c.shmBusy = c.shm.mem[:h.length], true, true
		}
		c.shmMu.Unlock()
		if err != nil {
			closeFds(call.Fds)
			return nil, fmt.Errorf("shared region: %w", ipc.Join(err, ErrProtocol))
		}
		return call, nil
	}
	if h.flags&(fSplit|fShm) != 0 {
		call.Data, call.big = c.bigBuf(int(h.length))
	}
	switch {
	case h.flags&fSplit != 0:
		if err := c.readBody(call.Data); err != nil {
			c.freeBig(call)
			closeFds(call.Fds)
			return nil, err
		}
	case h.flags&fShm != 0:
		c.shmMu.Lock()
		var err error = ErrProtocol
		if c.shm != nil {
			err = c.shm.ensure(int(h.length), false, c.d.cfg.maxData)
		}
		if err == nil {
			copyShared(call.Data, c.shm.mem[:h.length]) // copy, then use (S12)
		}
		c.shmMu.Unlock()
		if err != nil {
			c.freeBig(call)
			closeFds(call.Fds)
			return nil, fmt.Errorf("shared region: %w", ipc.Join(err, ErrProtocol))
		}
	default:
		call.Data = body
	}
	return call, nil
}

// bodyTimeout bounds how long the body of a split frame may take to arrive once
// its header has (FI-17: a client that stalls mid-frame loses its connection
// instead of holding a goroutine and a buffer forever). A variable only so that the
// tests can shorten it.
var bodyTimeout = 10 * time.Second

// readBody receives the body messages of a split frame into p.
func (c *conn) readBody(p []byte) error {
	if err := c.sc.SetReadDeadline(time.Now().Add(bodyTimeout)); err != nil {
		return err
	}
	defer c.sc.SetReadDeadline(time.Time{})
	for off := 0; off < len(p); {
		want := min(chunkSize, len(p)-off)
		n, _, err := c.sc.ReadMsg(context.Background(), p[off:off+want], nil)
		if err != nil || n != want {
			return fmt.Errorf("body message of %d bytes, want %d (%v): %w", n, want, err, ErrProtocol)
		}
		off += n
	}
	return nil
}

// skip discards k body messages.
func (c *conn) skip(k int) bool {
	var b [1]byte
	for ; k > 0; k-- {
		if _, _, err := c.sc.ReadMsg(context.Background(), b[:], nil); err != nil && !errors.Is(err, ipc.ErrTruncated) {
			return false
		}
	}
	return true
}

func (c *conn) adoptShm(fd int, threshold uint32) error {
	if c.d.cfg.noShm {
		return fmt.Errorf("door refuses shared memory: %w", ErrProtocol)
	}
	c.shmMu.Lock()
	defer c.shmMu.Unlock()
	if c.shm != nil {
		return fmt.Errorf("second shared region: %w", ErrProtocol)
	}
	r, err := adoptRegion(fd)
	if err != nil {
		return err
	}
	c.shm = r
	c.threshold.Store(int64(threshold))
	return nil
}

// dup answers a DUP frame with a new connection's descriptor.
func (c *conn) dup(id uint64) {
	f, err := c.d.NewClientFile()
	if err != nil {
		c.sendError(id, errorCode(err), err.Error())
		return
	}
	defer f.Close()
	c.send(header{kind: kReply, id: id, nfds: 1}, nil, []int{int(f.Fd())}, false, 0)
}

// send writes one frame: inline, through the shared region, or split.
// rcap is the largest data the receiver takes inline.
func (c *conn) send(h header, data []byte, fds []int, shmOK bool, rcap int) {
	c.wmu.Lock()
	switch {
	case shmOK && c.shmSized(len(data)) && c.sendShmLocked(h, data, fds):
	case len(data) <= min(rcap, len(c.wbuf)-hdrSize-maxErrMsg):
		h.put(c.wbuf)
		n := copy(c.wbuf[hdrSize:], data)
		if len(fds) == 0 {
			_ = c.sc.Send(context.Background(), c.wbuf[:hdrSize+n])
		} else {
			_, _ = c.sc.WriteMsg(context.Background(), c.wbuf[:hdrSize+n], fds)
		}
	default:
		c.sendSplitLocked(h, data, fds)
	}
	c.wmu.Unlock()
}

// shmSized reports whether n bytes of data are enough to go through the shared
// region (the client has handed one over, with a threshold of at most n).
func (c *conn) shmSized(n int) bool {
	t := c.threshold.Load()
	return t > 0 && int64(n) >= t
}

// sendShmLocked sends a frame whose data goes through the shared region (under
// wmu: the region holds one result at a time). It reports false, having sent
// nothing, when the region is gone (the connection is being torn down).
func (c *conn) sendShmLocked(h header, data []byte, fds []int) bool {
	c.shmMu.Lock()
	if c.shm == nil {
		c.shmMu.Unlock()
		return false
	}
	var err error
	if len(c.shm.mem) == 0 || &data[0] != &c.shm.mem[0] { // not already in place
		// A result inside the region fits its mapping: ensure never remaps then.
		if err = c.shm.ensure(len(data), true, max(len(data), 1)); err == nil {
			copyShared(c.shm.mem, data)
		}
	}
	c.shmMu.Unlock()
	if err != nil {
		c.sendErrorLocked(h.id, codeTooBig, err.Error())
		return true
	}
	h.flags |= fShm
	h.put(c.wbuf)
	c.d.resPath[2].Add(1)
	_, _ = c.sc.WriteMsg(context.Background(), c.wbuf[:hdrSize], fds)
	return true
}

// sendSplitLocked sends a frame as a header and body messages (under wmu).
func (c *conn) sendSplitLocked(h header, data []byte, fds []int) {
	h.flags |= fSplit
	h.put(c.wbuf)
	c.d.resPath[1].Add(1)
	bg := context.Background()
	if _, err := c.sc.WriteMsg(bg, c.wbuf[:hdrSize], fds); err != nil {
		return
	}
	for off := 0; off < len(data); off += chunkSize {
		if _, err := c.sc.WriteMsg(bg, data[off:min(off+chunkSize, len(data))], nil); err != nil {
			return
		}
	}
}

func (c *conn) sendError(id uint64, code uint32, msg string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.sendErrorLocked(id, code, msg)
}

func (c *conn) sendErrorLocked(id uint64, code uint32, msg string) {
	if len(msg) > maxErrMsg {
		msg = msg[:maxErrMsg]
	}
	h := header{kind: kError, id: id, aux0: code, length: uint64(len(msg))}
	h.put(c.wbuf)
	n := copy(c.wbuf[hdrSize:], msg)
	_, _ = c.sc.WriteMsg(context.Background(), c.wbuf[:hdrSize+n], nil)
}

// reject tells a connection refused by the policy why, then drains it until the
// client hangs up (closing with unread data would make the client's socket report
// ECONNRESET before it could read the reason).
func (c *conn) reject(why error) {
	defer c.d.wg.Done()
	c.sendError(0, codePerm, why.Error())
	_ = c.sc.CloseWrite() // not shutdown on Fd(): the socket may be closed meanwhile
	_ = c.sc.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [hdrSize]byte
	fds := make([]int, c.d.fdCap())
	for {
		_, n, err := c.sc.ReadMsg(context.Background(), b[:], fds)
		closeFds(fds[:n])
		if err != nil && !errors.Is(err, ipc.ErrTruncated) {
			break
		}
	}
	c.sc.Close()
}

// revoke fails the connection's calls with ErrRevoked and tells the client; the
// reading goroutine then drains the connection until the client hangs up.
func (c *conn) revoke() {
	c.cancelAll()
	c.wmu.Lock()
	h := header{kind: kRevoked}
	h.put(c.wbuf)
	_, _ = c.sc.WriteMsg(context.Background(), c.wbuf[:hdrSize], nil)
	c.wmu.Unlock()
	_ = c.sc.CloseWrite()
}

// cancelAll marks the connection revoked and cancels every call on it, queued,
// running on a pool goroutine or on the reading one.
func (c *conn) cancelAll() {
	c.mu.Lock()
	c.revoked.Swap(true) // Swap: ordered before the load of running (see serve)
	calls := make([]*Call, 0, len(c.calls)+1)
	for _, call := range c.calls {
		calls = append(calls, call)
	}
	clear(c.calls)
	if call := c.running.Load(); call != nil {
		calls = append(calls, call)
	}
	c.mu.Unlock()
	for _, call := range calls {
		call.ctx.cancel()
	}
}

// teardown ends the connection: its calls are cancelled (their handlers see it),
// the region unmapped, the socket closed.
func (c *conn) teardown() {
	c.down.Do(func() {
		c.cancelAll()
		c.sc.Close()
		c.shmMu.Lock()
		for c.shmBusy { // a handler is still reading the region in place
			c.shmFree.Wait()
		}
		c.shm.close()
		c.shm = nil
		c.shmFree.Broadcast()
		c.shmMu.Unlock()
		c.d.dropConn(c)
	})
}

func closeFds(fds []int) {
	for i, fd := range fds {
		if fd >= 0 {
			unix.Close(fd)
		}
		fds[i] = -1
	}
}

// path indexes Door.argPath and resPath: 0 inline, 1 split, 2 shm.
func path(flags uint16) int {
	switch {
	case flags&fSplit != 0:
		return 1
	case flags&fShm != 0:
		return 2
	}
	return 0
}

// bigBuf returns n bytes: the connection's large buffer if it is free.
func (c *conn) bigBuf(n int) ([]byte, bool) {
	c.bigMu.Lock()
	defer c.bigMu.Unlock()
	if c.bigBusy {
		return make([]byte, n), false
	}
	if cap(c.big) < n {
		c.big = make([]byte, n)
	}
	c.bigBusy = true
	return c.big[:n], true
}

func (c *conn) freeBig(call *Call) {
	if call.big {
		call.big = false
		c.bigMu.Lock()
		c.bigBusy = false
		c.bigMu.Unlock()
	}
}
