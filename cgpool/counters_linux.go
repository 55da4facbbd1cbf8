package cgpool

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Counter slots in the counters file.
const (
	cHits = iota
	cMisses
	cReleased // returned to the pool
	cRemoved  // released but destroyed (pool full, reset failed)
	cTicket   // claims taken: where the next claim starts looking
	nCounters
)

const countersSize = 4096

// counters is the counters file mapped shared: an atomic add in one
// process is seen by all.
type counters struct {
	mem []byte
}

// openCounters maps dir/counters, making it if needed. The file is made
// full size under a temporary name and linked into place, so no process
// maps a short file (which would SIGBUS).
func openCounters(dir string) (*counters, error) {
	p := filepath.Join(dir, "counters")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if os.IsNotExist(err) {
		tmp, terr := os.CreateTemp(dir, ".counters-")
		if terr != nil {
			return nil, fmt.Errorf("cgpool: create counters in %s: %w", dir, terr)
		}
		if terr = tmp.Truncate(countersSize); terr == nil {
			terr = os.Link(tmp.Name(), p)
		}
		tmp.Close()
		os.Remove(tmp.Name())
		if terr != nil && !os.IsExist(terr) {
			return nil, fmt.Errorf("cgpool: create %s: %w", p, terr)
		}
		f, err = os.OpenFile(p, os.O_RDWR, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("cgpool: open counters: %w", err)
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, countersSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("cgpool: map %s: %w", p, err)
	}
	return &counters{mem: mem}, nil
}

func (c *counters) slot(i int) *uint64 { return (*uint64)(unsafe.Pointer(&c.mem[i*8])) }

func (c *counters) add(i int) {
	if c != nil {
		atomic.AddUint64(c.slot(i), 1)
	}
}

// next returns the counter's value before adding 1; false without a map.
func (c *counters) next(i int) (uint64, bool) {
	if c == nil {
		return 0, false
	}
	return atomic.AddUint64(c.slot(i), 1) - 1, true
}

func (c *counters) get(i int) uint64 {
	if c == nil {
		return 0
	}
	return atomic.LoadUint64(c.slot(i))
}

func (c *counters) close() error {
	if c == nil || c.mem == nil {
		return nil
	}
	err := unix.Munmap(c.mem)
	c.mem = nil
	return err
}
