package mailbox

import (
	"reflect"
	"testing"
)

// FuzzDecodeRecord reads arbitrary namespace entry files: a record either decodes or
// is an error, and whatever decodes and can be written again reads back the same.
func FuzzDecodeRecord(f *testing.F) {
	for _, rec := range []Record{
		{Name: "jobs", Kind: "mailbox", Backend: "posixmq", Object: "/ipclab-jobs", MaxMsgs: 10, MaxPayload: 8192},
		{Name: "ctl", Kind: "link", Backend: "seqpacket", Object: "/run/x/ctl", Persistent: true},
	} {
		b, err := encodeRecord(rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"name":1}`))
	f.Add([]byte(`{"sysv":{"key":-1}}`))
	f.Add([]byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodeRecord(b)
		if err != nil {
			return
		}
		again, err := encodeRecord(rec)
		if err != nil {
			return // decodes, but too long to be written back: refused on write
		}
		back, err := decodeRecord(again)
		if err != nil || !reflect.DeepEqual(back, rec) {
			t.Fatalf("%+v wrote and read back as %+v, %v", rec, back, err)
		}
	})
}
