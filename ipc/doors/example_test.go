package doors_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ipclab/ipclab/ipc/doors"
)

// A door server and a client. The server and the client would normally be two
// processes; the door does not care.
func Example() {
	dir, _ := os.MkdirTemp("", "door-example")
	defer os.RemoveAll(dir)

	// Server: a door that upper-cases its argument, named in the file system.
	d, err := doors.New(func(ctx context.Context, c *doors.Call) (*doors.Reply, error) {
		return &doors.Reply{Data: []byte(strings.ToUpper(string(c.Data)))}, nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	if err := d.Attach(filepath.Join(dir, "upper")); err != nil {
		fmt.Println(err)
		return
	}

	// Client.
	c, err := doors.Open(context.Background(), filepath.Join(dir, "upper"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	res, _, err := c.Call(context.Background(), []byte("hello, door"), nil)
	fmt.Printf("%s %v\n", res, err)
	fmt.Println(c.Info().Pid == os.Getpid())
	// Output:
	// HELLO, DOOR <nil>
	// true
}

// Descriptors travel through a door both ways: here the server opens a file for
// the caller and passes it back (closing its own copy once sent).
func Example_passingDescriptors() {
	dir, _ := os.MkdirTemp("", "door-example")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "motd"), []byte("doors pass descriptors\n"), 0o600)

	d, err := doors.New(func(ctx context.Context, c *doors.Call) (*doors.Reply, error) {
		f, err := os.Open(filepath.Join(dir, filepath.Base(string(c.Data))))
		if err != nil {
			return nil, err
		}
		fd, err := dupFd(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		return &doors.Reply{Fds: []int{fd}, Release: true}, nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	// A door descriptor, as another process would inherit it.
	df, err := d.NewClientFile()
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := doors.NewClient(context.Background(), df)
	df.Close()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	_, fds, err := c.Call(context.Background(), []byte("motd"), nil)
	if err != nil || len(fds) != 1 {
		fmt.Println(err, len(fds))
		return
	}
	f := os.NewFile(uintptr(fds[0]), "motd")
	defer f.Close()
	b, _ := io.ReadAll(f)
	fmt.Print(string(b))
	// Output: doors pass descriptors
}

// Return builds a reply without allocating; here the result is the argument itself,
// upper-cased in place (Data is the handler's until it returns).
func ExampleCall_Return() {
	d, err := doors.New(func(ctx context.Context, c *doors.Call) (*doors.Reply, error) {
		for i, b := range c.Data {
			if 'a' <= b && b <= 'z' {
				c.Data[i] = b - 'a' + 'A'
			}
		}
		return c.Return(c.Data, nil), nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	f, err := d.NewClientFile() // a door descriptor, as another process would receive it
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := doors.NewClient(context.Background(), f)
	f.Close()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	res, _, err := c.Call(context.Background(), []byte("in place"), nil)
	fmt.Printf("%s %v\n", res, err)
	// Output: IN PLACE <nil>
}
