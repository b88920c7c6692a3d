package posixmq_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

// stopSeq tells the receiver that the sender is done.
const stopSeq = math.MaxUint64

// The receiver of the acknowledged stream: args are the data queue, the ack queue,
// its delivery log and "dedup" or "nodedup". It delivers a message by appending its
// sequence number to the log (fsynced), then acknowledges it. With dedup it first
// reads the log and delivers no number twice: what makes a retransmission harmless.
var _ = ipctest.Helper("fi03-receiver", func(args []string) int {
	ctx := context.Background()
	in, err := posixmq.Open(args[0], posixmq.ReadOnly())
	if err != nil {
		fmt.Println(err)
		return 2
	}
	acks, err := posixmq.Open(args[1], posixmq.WriteOnly())
	if err != nil {
		fmt.Println(err)
		return 2
	}
	log, err := os.OpenFile(args[2], os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	dedup := args[3] == "dedup"
	seen := map[uint64]bool{}
	old, _ := os.ReadFile(args[2])
	for ; len(old) >= 8; old = old[8:] {
		seen[binary.BigEndian.Uint64(old)] = true
	}
	buf := make([]byte, 8)
	for {
		if _, _, err := in.Recv(ctx, buf); err != nil {
			fmt.Println("recv:", err)
			return 1
		}
		seq := binary.BigEndian.Uint64(buf)
		if seq == stopSeq {
			return 0
		}
		ipctest.Point("received") // a crash here loses the message: the sender resends it
		if !dedup || !seen[seq] {
			if _, err := log.Write(buf); err != nil || log.Sync() != nil {
				fmt.Println("log:", err)
				return 1
			}
			seen[seq] = true
		}
		ipctest.Point("delivered") // a crash here loses the ack: the resent message is a duplicate
		if err := acks.Send(ctx, buf, 0); err != nil {
			fmt.Println("ack:", err)
			return 1
		}
	}
})

// ackedStream sends n numbered messages with stop-and-wait retransmission to a chain
// of receiver processes, each SIGKILLed at a seeded point (after receiving, or after
// delivering but before acknowledging) except the last, and returns the receivers'
// delivery log and the number of kills.
func ackedStream(t *testing.T, rng *rand.Rand, n, kills int, dedup string) ([]uint64, int) {
	t.Helper()
	tag := strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(rng.IntN(1<<30))
	dataName, ackName := "/ipclab-fi03-d-"+tag, "/ipclab-fi03-a-"+tag
	data, err := posixmq.Create(dataName, posixmq.WithAttr(8, 8))
	if err != nil {
		t.Fatal(err)
	}
	defer posixmq.Remove(dataName)
	defer data.Close()
	acks, err := posixmq.Create(ackName, posixmq.WithAttr(8, 8))
	if err != nil {
		t.Fatal(err)
	}
	defer posixmq.Remove(ackName)
	defer acks.Close()
	logPath := t.TempDir() + "/delivered"

	killed := 0
	var dead chan error
	// start starts the next receiver when remaining messages are still to go; each
	// point is reached once per message received, so a kill at a hit no later than
	// remaining/(kills left+1) is sure to happen, with room for the kills after it.
	start := func(remaining int) {
		opts := []ipctest.Option{ipctest.WithArgs(dataName, ackName, logPath, dedup)}
		if killed < kills {
			point := []string{"received", "delivered"}[rng.IntN(2)]
			hit := 1 + rng.IntN(max(1, remaining/(kills-killed+1)))
			opts = append(opts, ipctest.FaultAt(point, hit, unix.SIGKILL))
		}
		p := ipctest.Start(t, "fi03-receiver", opts...)
		dead = make(chan error, 1)
		go func() { dead <- p.Wait() }()
	}
	start(n)
	msg, ack := make([]byte, 8), make([]byte, 8)
	ctx, cancel := patientContext(t)
	defer cancel()
	for seq := uint64(0); seq < uint64(n); seq++ {
		binary.BigEndian.PutUint64(msg, seq)
		if err := data.Send(ctx, msg, 0); err != nil {
			t.Fatal(err)
		}
		for acked := false; !acked; {
			// Wait for this message's ack; a receiver's death is the timeout after
			// which the message is sent again, to the next receiver.
			rctx, rcancel := context.WithTimeout(ctx, 20*time.Millisecond)
			_, _, err := acks.Recv(rctx, ack)
			rcancel()
			switch {
			case err == nil:
				acked = binary.BigEndian.Uint64(ack) == seq // older acks are stale
			case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
				select {
				case <-dead:
					killed++
					// Anything the dead receiver left unread is read by the next one;
					// resend what may have died with it.
					start(n - int(seq))
					if err := data.Send(ctx, msg, 0); err != nil {
						t.Fatal(err)
					}
				default:
				}
			default:
				t.Fatalf("message %d: %v", seq, err)
			}
		}
	}
	binary.BigEndian.PutUint64(msg, stopSeq)
	if err := data.Send(ctx, msg, 0); err != nil {
		t.Fatal(err)
	}
	if err := <-dead; err != nil {
		t.Fatalf("last receiver: %v", err)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var log []uint64
	for ; len(b) >= 8; b = b[8:] {
		log = append(log, binary.BigEndian.Uint64(b))
	}
	return log, killed
}

// TestReceiverKilledBeforeAck is FI-03: receivers SIGKILLed after receiving a message,
// or after delivering it but before acknowledging it. The sender retransmits after
// the ack's timeout, the receiver dedups by sequence number from its delivery log:
// 0 lost, 0 duplicated at the application, in order. The same run without dedup is
// the planted violation the checker must catch.
func TestReceiverKilledBeforeAck(t *testing.T) {
	t.Run("FI-03", func(t *testing.T) {
		seed := ipctest.Seed(t)
		const n, kills = 300, 10
		log, killed := ackedStream(t, rand.New(rand.NewPCG(seed, 3)), n, kills, "dedup")
		rep := ipctest.CheckSeq(n, log)
		t.Logf("%d receivers killed: %v", killed, rep)
		if killed != kills {
			t.Errorf("%d receivers killed, want %d", killed, kills)
		}
		if err := rep.ExactlyOnce(true); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("planted", func(t *testing.T) {
		// Without dedup every kill after delivery and before the ack delivers the
		// resent message twice: the checker must say so.
		rng := rand.New(rand.NewPCG(ipctest.Seed(t), 4))
		for range 20 {
			log, _ := ackedStream(t, rng, 60, 4, "nodedup")
			if rep := ipctest.CheckSeq(60, log); rep.Duplicated > 0 {
				if rep.ExactlyOnce(true) == nil {
					t.Fatalf("checker missed %v", rep)
				}
				t.Logf("planted violation caught: %v", rep)
				return
			}
		}
		t.Fatal("no kill fell between delivery and ack in 20 runs")
	})
}
