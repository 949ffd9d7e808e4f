package local_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/spf13/afero"
)

// openCounter counts the opens of one file.
type openCounter struct {
	afero.Fs
	path  string
	opens atomic.Int32
}

func (c *openCounter) Open(name string) (afero.File, error) {
	if name == c.path {
		c.opens.Add(1)
	}
	return c.Fs.Open(name)
}

func (c *openCounter) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	if name == c.path {
		c.opens.Add(1)
	}
	return c.Fs.OpenFile(name, flag, perm)
}

func TestPrefetchOnTheOSFileSystemIsUsedWhileTheFileIsTheSame(t *testing.T) {
	tests := []struct {
		name       string
		between    func(t *testing.T, fs afero.Fs, real string) // after Prefetch, before Read
		wantSerial uint64
		wantPID    int
		wantRead   bool // Read must open the file again
	}{
		{"file unchanged", func(*testing.T, afero.Fs, string) {}, 2, 4242, false},
		{"another command wrote meanwhile", func(t *testing.T, fs afero.Fs, _ string) {
			st := atSeeded()
			st.Pools["pool.chat"].Replicas[0].PID = 99
			if err := newStore(fs).Write(t.Context(), st); err != nil {
				t.Fatal(err)
			}
		}, 3, 99, true},
		{"edited in place, same size", func(t *testing.T, _ afero.Fs, real string) {
			f, err := os.OpenFile(real, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			data, err := os.ReadFile(real)
			if err != nil {
				t.Fatal(err)
			}
			i := strings.Index(string(data), "4242")
			if _, err := f.WriteAt([]byte("4243"), int64(i)); err != nil {
				t.Fatal(err)
			}
		}, 2, 4243, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			base := afero.NewBasePathFs(afero.NewOsFs(), root)
			fs := &openCounter{Fs: base, path: filepath.Join(dir, "state.json")}
			s := newStore(fs)
			st := sample()
			for range 2 {
				if err := s.Write(t.Context(), st); err != nil {
					t.Fatal(err)
				}
			}
			// Times from long ago, so that an edit now changes them even
			// where the kernel's clock for file times is coarse.
			real := filepath.Join(root, dir, "state.json")
			if err := os.Chtimes(real, t0, t0); err != nil {
				t.Fatal(err)
			}

			s.Prefetch(t.Context())
			tc.between(t, fs, real)
			before := fs.opens.Load()
			got, err := s.Read(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if reread := fs.opens.Load() > before; reread != tc.wantRead {
				t.Errorf("Read opened the state file again: %v, want %v", reread, tc.wantRead)
			}
			if got.Serial != tc.wantSerial || got.Pools["pool.chat"].Replicas[0].PID != tc.wantPID {
				t.Errorf("Read = serial %d, pid %d; want serial %d, pid %d (the file's)",
					got.Serial, got.Pools["pool.chat"].Replicas[0].PID, tc.wantSerial, tc.wantPID)
			}
		})
	}
}
