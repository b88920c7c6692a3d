package fifo_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ipclab/ipclab/ipc/fifo"
)

func Example() {
	dir, _ := os.MkdirTemp("", "ipclab-example") // private: 0700, ours
	defer os.RemoveAll(dir)

	f, err := fifo.Create(filepath.Join(dir, "requests"))
	if err != nil {
		panic(err)
	}
	defer f.Close()  // drops the handle
	defer f.Remove() // deletes the FIFO (Close alone would leave it)

	go func() {
		w, _ := f.OpenWriter(context.Background()) // waits for the reader
		w.Write([]byte("knock knock"))
		w.Close()
	}()
	r, _ := f.OpenReader(context.Background()) // waits for the writer
	defer r.Close()
	msg, _ := io.ReadAll(r)
	fmt.Println(string(msg))
	// Output: knock knock
}
