package faultfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/spf13/afero"
)

// Op is a kind of call that can be made to fail.
type Op string

const (
	Rename   Op = "rename"   // Fs.Rename
	OpenFile Op = "openfile" // Fs.OpenFile and Fs.Create
	Open     Op = "open"     // Fs.Open (read-only opens)
	Sync     Op = "sync"     // File.Sync
	Write    Op = "write"    // File.Write, WriteAt and WriteString
)

// ErrInjected is wrapped by every failure faultfs makes up, so a test can
// tell it from a real one with errors.Is.
var ErrInjected = errors.New("faultfs: injected fault")

// Fs is an afero.Fs that fails the calls it was told to. Calls are counted
// per Op from New (or Reset), starting at 1. It is safe for concurrent use.
type Fs struct {
	afero.Fs // every call not listed in Op passes straight through

	mu    sync.Mutex
	calls map[Op]int
	rules map[Op]rule
}

type rule struct {
	n      int  // the call that fails
	sticky bool // and every one after it
}

// New wraps base; nothing fails until FailOn or FailFrom says so.
func New(base afero.Fs) *Fs {
	return &Fs{Fs: base, calls: map[Op]int{}, rules: map[Op]rule{}}
}

// FailOn makes the nth call of op fail, and only that one. It replaces an
// earlier rule for op.
func (f *Fs) FailOn(op Op, n int) *Fs {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[op] = rule{n: n}
	return f
}

// FailFrom makes the nth call of op and every later one fail, like a disk
// that has gone bad. It replaces an earlier rule for op.
func (f *Fs) FailFrom(op Op, n int) *Fs {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[op] = rule{n: n, sticky: true}
	return f
}

// Calls is how many calls of op were made, failed ones included.
func (f *Fs) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// Reset forgets every rule and count.
func (f *Fs) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = map[Op]int{}
	f.rules = map[Op]rule{}
}

// hit counts a call of op and returns the injected error if it must fail.
func (f *Fs) hit(op Op) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	n := f.calls[op]
	r, ok := f.rules[op]
	if !ok || n < r.n || (n > r.n && !r.sticky) {
		return nil
	}
	return fmt.Errorf("%w (%s call %d)", ErrInjected, op, n)
}

// Name is the wrapped filesystem's name, marked.
func (f *Fs) Name() string { return "faultfs(" + f.Fs.Name() + ")" }

func (f *Fs) Rename(oldname, newname string) error {
	if err := f.hit(Rename); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	return f.Fs.Rename(oldname, newname)
}

func (f *Fs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	if err := f.hit(OpenFile); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return f.wrap(f.Fs.OpenFile(name, flag, perm))
}

func (f *Fs) Create(name string) (afero.File, error) {
	if err := f.hit(OpenFile); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return f.wrap(f.Fs.Create(name))
}

func (f *Fs) Open(name string) (afero.File, error) {
	if err := f.hit(Open); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return f.wrap(f.Fs.Open(name))
}

func (f *Fs) wrap(af afero.File, err error) (afero.File, error) {
	if err != nil {
		return nil, err
	}
	return &file{File: af, fs: f}, nil
}

// file counts and fails Sync and writes; everything else passes through.
type file struct {
	afero.File
	fs *Fs
}

func (f *file) Sync() error {
	if err := f.fs.hit(Sync); err != nil {
		return &fs.PathError{Op: "sync", Path: f.Name(), Err: err}
	}
	return f.File.Sync()
}

func (f *file) Write(p []byte) (int, error) {
	if err := f.fs.hit(Write); err != nil {
		return 0, &fs.PathError{Op: "write", Path: f.Name(), Err: err}
	}
	return f.File.Write(p)
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.hit(Write); err != nil {
		return 0, &fs.PathError{Op: "write", Path: f.Name(), Err: err}
	}
	return f.File.WriteAt(p, off)
}

func (f *file) WriteString(s string) (int, error) {
	if err := f.fs.hit(Write); err != nil {
		return 0, &fs.PathError{Op: "write", Path: f.Name(), Err: err}
	}
	return f.File.WriteString(s)
}
