//go:build !linux

package netns

import "context"

// New is not supported on this platform.
func New(dir, name string) (string, error) { return "", ErrNotSupported }

// Remove is not supported on this platform.
func Remove(path string) error { return ErrNotSupported }

// Purge is not supported on this platform.
func Purge(dir string) error { return ErrNotSupported }

// Pool is not supported on this platform.
type Pool struct {
	dir  string
	size int
}

// Stats is a snapshot of a pool directory.
type Stats struct{ Idle, Used int }

// NewPool returns a pool whose every method fails with ErrNotSupported.
func NewPool(dir string, size int) *Pool { return &Pool{dir: dir, size: size} }

func (p *Pool) Dir() string                   { return p.dir }
func (p *Pool) Size() int                     { return p.size }
func (p *Pool) Take() (string, bool, error)   { return "", false, ErrNotSupported }
func (p *Pool) Release(path string)           {}
func (p *Pool) Fill(n int) error              { return ErrNotSupported }
func (p *Pool) Run(ctx context.Context) error { return ErrNotSupported }
func (p *Pool) Wait() error                   { return nil }
func (p *Pool) Close() error                  { return nil }
func (p *Pool) Stats() (Stats, error)         { return Stats{}, ErrNotSupported }
