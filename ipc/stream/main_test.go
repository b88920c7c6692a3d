package stream_test

import (
	"testing"

	"github.com/ipclab/ipclab/internal/ipctest"
)

func TestMain(m *testing.M) { ipctest.Main(m) }
