package lazyfs

import (
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// pageSize is the unit in which overwritten data is kept for undoing.
const pageSize = 4096

// fileState is how to bring a file changed since its last sync back to
// what that sync made durable.
type fileState struct {
	size  int64            // its size at the sync
	pages map[int64][]byte // page index -> the page's bytes at the sync (clipped to size), for pages changed since
	// last is the last write since the sync, for TearLastWrites.
	lastOff int64
	lastLen int
}

// changed returns the state of the file with backing inode ino and open
// descriptor fd, starting one (the file as it is now is what was synced)
// on its first change since its last sync. f.mu is held.
func (f *FS) changed(ino uint64, fd int) (*fileState, error) {
	if st := f.files[ino]; st != nil {
		return st, nil
	}
	var s syscall.Stat_t
	if err := syscall.Fstat(fd, &s); err != nil {
		return nil, err
	}
	st := &fileState{size: s.Size, pages: map[int64][]byte{}}
	f.files[ino] = st
	return st, nil
}

// keep saves, before [lo, hi) of the file on fd changes, the pages of it
// that hold synced data and are not saved yet.
func (st *fileState) keep(fd int, lo, hi int64) error {
	if hi > st.size {
		hi = st.size
	}
	if lo >= hi {
		return nil
	}
	for p := lo / pageSize; p*pageSize < hi; p++ {
		if _, ok := st.pages[p]; ok {
			continue
		}
		n := min(pageSize, st.size-p*pageSize)
		buf := make([]byte, n)
		got, err := syscall.Pread(fd, buf, p*pageSize)
		if err != nil {
			return err
		}
		// Bytes past the file's end now were cut by a truncate whose
		// pages were saved; a short read cannot happen for pages not
		// saved yet, but zeros are what a hole reads as anyway.
		clear(buf[max(got, 0):])
		st.pages[p] = buf
	}
	return nil
}

// synced records that the file with backing inode ino is durable as it
// is now. f.mu is held.
func (f *FS) synced(ino uint64) {
	delete(f.files, ino)
	if f.cfg.entries == EntriesJournaled {
		clear(f.dirs)
	}
}

// touchDir records the entries of the directory at path as durable, on
// its first change since its last sync. f.mu is held.
func (f *FS) touchDir(path string) error {
	var s syscall.Stat_t
	if err := syscall.Lstat(path, &s); err != nil {
		return err
	}
	if _, ok := f.dirs[s.Ino]; ok {
		return nil
	}
	entries, err := listDir(path)
	if err != nil {
		return err
	}
	f.dirs[s.Ino] = entries
	return nil
}

// listDir returns the entries of the directory at path: name to inode.
func listDir(path string) (map[string]uint64, error) {
	d, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil && err != io.EOF {
		return nil, err
	}
	out := make(map[string]uint64, len(names))
	for _, name := range names {
		var s syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(path, name), &s); err != nil {
			return nil, err
		}
		out[name] = s.Ino
	}
	return out, nil
}

// retire moves the file or directory at path, about to lose its name,
// into the attic, where it stays (and keeps its inode number) until the
// next PowerLoss or Close: an entry durable in some directory may still
// name it. With link, the file stays where it is too (a rename is about to
// replace it). f.mu is held.
func (f *FS) retire(path string, link bool) error {
	var s syscall.Stat_t
	if err := syscall.Lstat(path, &s); err != nil {
		return err
	}
	dst := filepath.Join(f.attic(), strconv.FormatUint(s.Ino, 10))
	if link {
		return syscall.Link(path, dst)
	}
	return syscall.Rename(path, dst)
}

// restore brings the file at path back to what st says was synced; with
// tear, the last write since survives in part. It returns the unsynced
// bytes dropped and whether a write was torn.
func restore(path string, st *fileState, tear *rand.Rand) (int64, bool, error) {
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, false, err
	}
	defer syscall.Close(fd)
	var s syscall.Stat_t
	if err := syscall.Fstat(fd, &s); err != nil {
		return 0, false, err
	}
	dropped := max(s.Size-st.size, 0)
	var torn []byte
	if tear != nil && st.lastLen > 1 && st.lastOff < s.Size {
		last := make([]byte, min(int64(st.lastLen), s.Size-st.lastOff))
		n, err := syscall.Pread(fd, last, st.lastOff)
		if err != nil {
			return 0, false, err
		}
		if n > 1 {
			torn = last[:1+tear.IntN(n-1)]
		}
	}
	if err := syscall.Ftruncate(fd, st.size); err != nil {
		return 0, false, err
	}
	for p, page := range st.pages {
		if _, err := syscall.Pwrite(fd, page, p*pageSize); err != nil {
			return 0, false, err
		}
		dropped += int64(len(page))
	}
	if len(torn) > 0 {
		if _, err := syscall.Pwrite(fd, torn, st.lastOff); err != nil {
			return 0, false, err
		}
	}
	return dropped, len(torn) > 0, nil
}
