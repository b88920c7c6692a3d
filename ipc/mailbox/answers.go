package mailbox

import (
	"errors"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// gone reports whether err means the other side no longer exists.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, ipc.ErrRemoved) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, ipc.ErrPeerGone)
}

// replyPort is a Sender's private port for answers, created on its first
// delivery- or response-based send: a "reply" entry in the namespace (so Reap finds it
// if the process dies) over a queue of the same backend as the destination.
type replyPort struct {
	ns  *Namespace
	cfg config

	mu   sync.Mutex
	in   carrier
	ent  *entry
	addr []byte
	done bool
}

func (p *replyPort) open() (carrier, []byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return nil, nil, errClosedSender
	}
	if p.in != nil {
		return p.in, p.addr, nil
	}
	owner, err := self()
	if err != nil {
		return nil, nil, err
	}
	c := p.cfg
	c.maxMsgs = min(c.maxMsgs, 4)
	in, obj, err := createQueue(c.backend, c.maxMsgs, c.maxFrame(), c.wait, true)
	if err != nil {
		return nil, nil, err
	}
	name := "_r." + strconv.Itoa(os.Getpid()) + "." + randomHex(6)
	rec := Record{Name: name, Kind: "reply", Backend: c.backend.String(), Object: obj,
		MaxMsgs: c.maxMsgs, MaxPayload: c.maxPayload, Owner: owner}
	ent, err := p.ns.register(rec)
	if err != nil {
		in.close()
		destroyObject(rec)
		return nil, nil, err
	}
	p.in, p.ent, p.addr = in, ent, []byte(name)
	return p.in, p.addr, nil
}

func (p *replyPort) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	if p.in == nil {
		return nil
	}
	err := p.in.close()
	// A reply port has one user: its Sender. Remove it whatever others hold.
	return ipc.Join(err, p.ent.remove(), p.ent.release(false))
}

// nsAnswers sends answers to reply ports found in the namespace, keeping a few open.
// It holds no lock on their entries, so a reply port still goes when its Sender does.
type nsAnswers struct {
	ns  *Namespace
	cfg config

	mu    sync.Mutex
	cache map[string]carrier
}

const answerCacheSize = 32

func (a *nsAnswers) get(addr []byte) (carrier, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.cache[string(addr)]; ok {
		return c, nil
	}
	ent, err := a.ns.lookup(string(addr), true)
	if err != nil {
		return nil, err
	}
	rec := ent.rec
	ent.release(false)
	if rec.Kind != "reply" {
		return nil, &ipc.OpError{Op: "answer", Object: rec.Name, Err: errInvalid}
	}
	c, err := openQueue(rec, a.cfg.wait, true)
	if err != nil {
		return nil, err
	}
	if a.cache == nil {
		a.cache = make(map[string]carrier)
	}
	if len(a.cache) >= answerCacheSize {
		for k, old := range a.cache {
			old.close()
			delete(a.cache, k)
			break
		}
	}
	a.cache[string(addr)] = c
	return c, nil
}

func (a *nsAnswers) drop(addr []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.cache[string(addr)]; ok {
		c.close()
		delete(a.cache, string(addr))
	}
}

func (a *nsAnswers) close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, c := range a.cache {
		c.close()
		delete(a.cache, k)
	}
	return nil
}
