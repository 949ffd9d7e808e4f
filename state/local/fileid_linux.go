package local

import (
	"io/fs"
	"syscall"
)

// fileID identifies one version of a file: which inode, and its size and
// modification and change times. The zero fileID is "unknown".
type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime syscall.Timespec
}

// idOf is fi's identity when fi comes from the OS (the zero fileID
// otherwise, as from afero.MemMapFs).
func idOf(fi fs.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino), size: int64(st.Size), mtime: st.Mtim, ctime: st.Ctim}
}
