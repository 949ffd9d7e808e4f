package sdk

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileSHA256(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(path, []byte("abc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if sum, err := FileSHA256(path); err != nil || sum != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("FileSHA256 = %q, %v", sum, err)
	}
	if _, err := FileSHA256(path + ".missing"); err == nil || !strings.HasPrefix(err.Error(), "hashing "+path+".missing: ") {
		t.Fatalf("missing file: %v", err)
	}
}
