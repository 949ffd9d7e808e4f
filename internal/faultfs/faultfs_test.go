package faultfs

import (
	"errors"
	"os"
	"testing"

	"github.com/spf13/afero"
)

// call makes one call of op on f and returns its error.
func call(t *testing.T, f *Fs, op Op) error {
	t.Helper()
	switch op {
	case Rename:
		if err := afero.WriteFile(f.Fs, "/a", []byte("a"), 0o644); err != nil { // base: not counted
			t.Fatal(err)
		}
		return f.Rename("/a", "/b")
	case OpenFile:
		fh, err := f.OpenFile("/c", os.O_RDWR|os.O_CREATE, 0o644)
		if err == nil {
			fh.Close()
		}
		return err
	case Open:
		fh, err := f.Open("/")
		if err == nil {
			fh.Close()
		}
		return err
	case Sync, Write:
		fh, err := f.Fs.Create("/d")
		if err != nil {
			t.Fatal(err)
		}
		wf := &file{File: fh, fs: f}
		defer wf.Close()
		if op == Sync {
			return wf.Sync()
		}
		_, err = wf.Write([]byte("x"))
		return err
	}
	t.Fatalf("unknown op %q", op)
	return nil
}

func TestFailOnFailsOnlyTheNthCall(t *testing.T) {
	tests := []struct {
		op      Op
		wantMsg string
	}{
		{Rename, "rename /a /b: faultfs: injected fault (rename call 2)"},
		{OpenFile, "open /c: faultfs: injected fault (openfile call 2)"},
		{Open, "open /: faultfs: injected fault (open call 2)"},
		{Sync, "sync /d: faultfs: injected fault (sync call 2)"},
		{Write, "write /d: faultfs: injected fault (write call 2)"},
	}
	for _, tc := range tests {
		t.Run(string(tc.op), func(t *testing.T) {
			f := New(afero.NewMemMapFs()).FailOn(tc.op, 2)
			if err := call(t, f, tc.op); err != nil {
				t.Fatalf("call 1: %v", err)
			}
			err := call(t, f, tc.op)
			if !errors.Is(err, ErrInjected) {
				t.Fatalf("call 2: error = %v, want an injected fault", err)
			}
			if err.Error() != tc.wantMsg {
				t.Errorf("call 2: error = %q, want %q", err, tc.wantMsg)
			}
			if err := call(t, f, tc.op); err != nil {
				t.Errorf("call 3: %v", err)
			}
			if got := f.Calls(tc.op); got != 3 {
				t.Errorf("Calls(%s) = %d, want 3", tc.op, got)
			}
		})
	}
}

func TestFailFromFailsEveryLaterCall(t *testing.T) {
	f := New(afero.NewMemMapFs()).FailFrom(Sync, 2)
	want := []bool{false, true, true, true}
	for i, wantErr := range want {
		err := call(t, f, Sync)
		if (err != nil) != wantErr {
			t.Errorf("call %d: error = %v, want failure %v", i+1, err, wantErr)
		}
	}
}

func TestOpsAreCountedSeparately(t *testing.T) {
	f := New(afero.NewMemMapFs()).FailOn(Rename, 1)
	for _, op := range []Op{OpenFile, Open, Sync, Write} {
		if err := call(t, f, op); err != nil {
			t.Errorf("%s failed although only rename was told to: %v", op, err)
		}
	}
	if err := call(t, f, Rename); !errors.Is(err, ErrInjected) {
		t.Errorf("first rename: error = %v, want an injected fault", err)
	}
}

func TestCreateCountsAsOpenFile(t *testing.T) {
	f := New(afero.NewMemMapFs()).FailOn(OpenFile, 1)
	if _, err := f.Create("/x"); !errors.Is(err, ErrInjected) {
		t.Errorf("Create: error = %v, want an injected fault", err)
	}
	if _, err := f.Stat("/x"); !os.IsNotExist(err) {
		t.Errorf("failed Create left a file behind: %v", err)
	}
}

func TestEveryWriteMethodCountsAsWrite(t *testing.T) {
	f := New(afero.NewMemMapFs()).FailFrom(Write, 1)
	fh, err := f.Create("/w")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	writes := map[string]func() (int, error){
		"Write":       func() (int, error) { return fh.Write([]byte("x")) },
		"WriteAt":     func() (int, error) { return fh.WriteAt([]byte("x"), 0) },
		"WriteString": func() (int, error) { return fh.WriteString("x") },
	}
	for name, w := range writes {
		if n, err := w(); !errors.Is(err, ErrInjected) || n != 0 {
			t.Errorf("%s = %d, %v; want 0 and an injected fault", name, n, err)
		}
	}
	if got := f.Calls(Write); got != 3 {
		t.Errorf("Calls(Write) = %d, want 3", got)
	}
	if data, _ := afero.ReadFile(f.Fs, "/w"); len(data) != 0 {
		t.Errorf("failed writes reached the file: %q", data)
	}
}

func TestFilesOpenedThroughFsAreWrapped(t *testing.T) {
	f := New(afero.NewMemMapFs()).FailOn(Sync, 1)
	fh, err := afero.TempFile(f, "/", "tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if err := fh.Sync(); !errors.Is(err, ErrInjected) {
		t.Errorf("Sync on a file from afero.TempFile: error = %v, want an injected fault", err)
	}
}

func TestResetForgetsRulesAndCounts(t *testing.T) {
	f := New(afero.NewMemMapFs()).FailFrom(OpenFile, 1)
	_ = call(t, f, OpenFile)
	f.Reset()
	if got := f.Calls(OpenFile); got != 0 {
		t.Errorf("Calls after Reset = %d", got)
	}
	if err := call(t, f, OpenFile); err != nil {
		t.Errorf("OpenFile after Reset: %v", err)
	}
}

func TestNameMarksTheWrapper(t *testing.T) {
	if got := New(afero.NewMemMapFs()).Name(); got != "faultfs(MemMapFS)" {
		t.Errorf("Name() = %q", got)
	}
}
