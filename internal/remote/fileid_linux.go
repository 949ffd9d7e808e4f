package remote

import (
	"io/fs"
	"syscall"
	"time"
)

// fileID identifies one version of a local file: which inode, its size,
// and its modification and change times.
type fileID struct {
	path         string
	dev, ino     uint64
	size         int64
	mtime, ctime syscall.Timespec
}

// idOf is the identity of the file at path that fi describes, and the
// time it last changed; ok is false where the OS does not say.
func idOf(path string, fi fs.FileInfo) (id fileID, changed time.Time, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, time.Time{}, false
	}
	return fileID{path: path, dev: uint64(st.Dev), ino: uint64(st.Ino), size: int64(st.Size), mtime: st.Mtim, ctime: st.Ctim},
		time.Unix(st.Ctim.Sec, st.Ctim.Nsec), true
}
