package stage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// FileCache remembers one string per file (a sha256 digest, an engine
// version) keyed by the file's path, size and modification time, in memory
// and in a JSON file in the cache directory, so that a multi-GB model is
// hashed once and an engine's --version runs once per binary. A file that
// changes (new size or mtime) misses the cache. It is safe for concurrent
// use, and processes sharing the JSON file merge their entries.
type FileCache struct {
	path string // the JSON file; "" keeps the cache in memory only

	mu      sync.Mutex
	entries map[string]statEntry
	// read is the JSON file as last read or written: a miss re-reads the
	// file only when another process has changed it since.
	read fileStamp
}

// fileStamp identifies a version of a file; the zero stamp is a file that
// was never read.
type fileStamp struct {
	fi     fs.FileInfo // nil when the file did not exist
	absent bool
}

// stamp reads path's current stamp.
func stamp(path string) fileStamp {
	fi, err := os.Stat(path)
	switch {
	case err == nil:
		return fileStamp{fi: fi}
	case errors.Is(err, fs.ErrNotExist):
		return fileStamp{absent: true}
	}
	return fileStamp{} // unknown: read the file
}

// same reports whether s and o are the same known version of a file. An
// atomic write replaces the file, so a rewritten file is another inode.
func (s fileStamp) same(o fileStamp) bool {
	switch {
	case s.absent || o.absent:
		return s.absent && o.absent
	case s.fi == nil || o.fi == nil:
		return false
	}
	return os.SameFile(s.fi, o.fi) && s.fi.Size() == o.fi.Size() && s.fi.ModTime().Equal(o.fi.ModTime())
}

type statEntry struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	Value   string `json:"value"`
}

type statCacheFile struct {
	FormatVersion int                  `json:"format_version"`
	Entries       map[string]statEntry `json:"entries"`
}

const statCacheFormat = 1

// NewFileCache keeps its entries in the JSON file path; "" keeps them in
// memory only.
func NewFileCache(path string) *FileCache {
	return &FileCache{path: path, entries: map[string]statEntry{}}
}

func (e statEntry) matches(fi fs.FileInfo) bool {
	return e.Size == fi.Size() && e.ModTime == fi.ModTime().UnixNano()
}

// Get returns the value recorded for path when fi still matches it. A miss
// in memory re-reads the file when it changed since it was last read, since
// another llorch process sharing the cache may have recorded it.
func (c *FileCache) Get(path string, fi fs.FileInfo) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[path]; ok && e.matches(fi) {
		return e.Value, true
	}
	if c.path == "" {
		return "", false
	}
	now := stamp(c.path)
	if now.same(c.read) {
		return "", false
	}
	for k, v := range c.readFile() {
		c.entries[k] = v
	}
	c.read = now
	if e, ok := c.entries[path]; ok && e.matches(fi) {
		return e.Value, true
	}
	return "", false
}

// Put records value for path and fi, merging with what other processes
// wrote, and drops entries whose files are gone.
func (c *FileCache) Put(ctx context.Context, path string, fi fs.FileInfo, value string) error {
	if c.path == "" {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.entries[path] = statEntry{Size: fi.Size(), ModTime: fi.ModTime().UnixNano(), Value: value}
		return nil
	}
	unlock, err := LockFile(ctx, c.path+".lock", nil)
	if err != nil {
		return err
	}
	defer unlock()

	c.mu.Lock()
	defer c.mu.Unlock()
	merged := c.readFile()
	for k, v := range c.entries {
		if _, ok := merged[k]; !ok {
			merged[k] = v
		}
	}
	merged[path] = statEntry{Size: fi.Size(), ModTime: fi.ModTime().UnixNano(), Value: value}
	for k := range merged {
		if _, err := os.Stat(k); errors.Is(err, fs.ErrNotExist) {
			delete(merged, k)
		}
	}
	data, err := json.MarshalIndent(statCacheFile{FormatVersion: statCacheFormat, Entries: merged}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", c.path, err)
	}
	if err := WriteFileAtomic(c.path, append(data, '\n'), 0o644); err != nil {
		return err
	}
	c.entries = merged
	c.read = stamp(c.path)
	return nil
}

// readFile returns the entries on disk; a missing, corrupt or foreign file
// reads as empty (it is only a cache, rebuilt on the next put).
func (c *FileCache) readFile() map[string]statEntry {
	if c.path == "" {
		return map[string]statEntry{}
	}
	data, err := os.ReadFile(c.path)
	if err != nil {
		return map[string]statEntry{}
	}
	var f statCacheFile
	if json.Unmarshal(data, &f) != nil || f.FormatVersion != statCacheFormat || f.Entries == nil {
		return map[string]statEntry{}
	}
	return f.Entries
}
