package lazyfs

import (
	"context"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a file or directory: go-fuse's loopback node, with every
// change booked (so that PowerLoss can undo it) and refused once the
// mount is frozen. Lookups, attributes, listings and reads are the
// loopback's.
type node struct {
	*fs.LoopbackNode
	m *mount
}

var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeSetxattrer     = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)

	_ fs.NodeCopyFileRanger = (*node)(nil)
)

// WrapChild makes the loopback's nodes ours.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), m: n.m}
}

// path is the node's path in the backing tree.
func (n *node) path() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

// lock takes the filesystem's lock for a change: it fails with EIO once
// the mount is frozen. Unlock with n.m.fs.mu.Unlock.
func (m *mount) lock() syscall.Errno {
	m.fs.mu.Lock()
	if m.frozen {
		m.fs.mu.Unlock()
		return syscall.EIO
	}
	return 0
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	flags &^= syscall.O_APPEND | fuse.FMODE_EXEC
	trunc := flags&syscall.O_TRUNC != 0
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	if trunc || write {
		if errno := n.m.lock(); errno != 0 {
			return nil, 0, errno
		}
		defer n.m.fs.mu.Unlock()
	}
	fd, err := syscall.Open(n.path(), int(flags&^syscall.O_TRUNC)|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	h, err := newHandle(n.m, fd, flags)
	if err == nil && trunc {
		err = n.m.fs.truncate(h.ino, fd, 0)
	}
	if err != nil {
		syscall.Close(fd)
		return nil, 0, fs.ToErrno(err)
	}
	return h, fuse.FOPEN_DIRECT_IO, 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if errno := n.m.lock(); errno != 0 {
		return nil, nil, 0, errno
	}
	defer n.m.fs.mu.Unlock()
	dir := n.path()
	p := filepath.Join(dir, name)
	var s syscall.Stat_t
	existed := syscall.Lstat(p, &s) == nil
	if existed && flags&syscall.O_TRUNC != 0 && flags&syscall.O_EXCL == 0 && s.Mode&syscall.S_IFMT == syscall.S_IFREG {
		// A lookup missed it; the loopback opens it, truncating.
		if err := n.m.fs.truncatePath(p, 0); err != nil {
			return nil, nil, 0, fs.ToErrno(err)
		}
	}
	if !existed {
		if err := n.m.fs.touchDir(dir); err != nil {
			return nil, nil, 0, fs.ToErrno(err)
		}
	}
	ch, lf, _, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	// The loopback made the node (with its inode numbering); the handle
	// is ours, on a copy of the loopback file's descriptor.
	lfd, _ := lf.(fs.FilePassthroughFder).PassthroughFd()
	fd, err := syscall.Dup(lfd)
	lf.(fs.FileReleaser).Release(ctx)
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	h, err := newHandle(n.m, fd, flags)
	if err != nil {
		syscall.Close(fd)
		return nil, nil, 0, fs.ToErrno(err)
	}
	return ch, h, fuse.FOPEN_DIRECT_IO, 0
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := n.m.lock(); errno != 0 {
		return errno
	}
	if size, ok := in.GetSize(); ok {
		var err error
		if h, ok := f.(*handle); ok {
			err = n.m.fs.truncate(h.ino, h.fd, int64(size))
		} else {
			err = n.m.fs.truncatePath(n.path(), int64(size))
		}
		if err != nil {
			n.m.fs.mu.Unlock()
			return fs.ToErrno(err)
		}
		in.Valid &^= fuse.FATTR_SIZE
	}
	n.m.fs.mu.Unlock()
	// Modes, owners and times: not modelled, set at once.
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

// inDir runs f, a change to the node's entries, under the filesystem's
// lock once the directory's durable entries are booked.
func (n *node) inDir(f func(dir string) syscall.Errno) syscall.Errno {
	if errno := n.m.lock(); errno != 0 {
		return errno
	}
	defer n.m.fs.mu.Unlock()
	dir := n.path()
	if err := n.m.fs.touchDir(dir); err != nil {
		return fs.ToErrno(err)
	}
	return f(dir)
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (ch *fs.Inode, errno syscall.Errno) {
	errno = n.inDir(func(string) syscall.Errno {
		ch, errno = n.LoopbackNode.Mkdir(ctx, name, mode, out)
		return errno
	})
	return ch, errno
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (ch *fs.Inode, errno syscall.Errno) {
	errno = n.inDir(func(string) syscall.Errno {
		ch, errno = n.LoopbackNode.Symlink(ctx, target, name, out)
		return errno
	})
	return ch, errno
}

// Mknod is refused: special files are not modelled.
func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP
}

// Link is refused: a file has one name, so that a power loss has one
// place to put it back.
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP
}

// Tmpfile is refused, as Link is (a temporary file is named by a link).
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.ENOTSUP
}

// CopyFileRange is refused: its writes would bypass the bookkeeping.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, len uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOTSUP
}

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if errno := n.m.lock(); errno != 0 {
		return errno
	}
	n.m.fs.mu.Unlock()
	return n.LoopbackNode.Setxattr(ctx, attr, data, flags)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.inDir(func(dir string) syscall.Errno {
		p := filepath.Join(dir, name)
		var s syscall.Stat_t
		if err := syscall.Lstat(p, &s); err != nil {
			return fs.ToErrno(err)
		}
		if s.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			return syscall.EISDIR
		}
		return fs.ToErrno(n.m.fs.retire(p, false))
	})
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.inDir(func(dir string) syscall.Errno {
		p := filepath.Join(dir, name)
		entries, err := listDir(p)
		if err != nil {
			return fs.ToErrno(err)
		}
		if len(entries) > 0 {
			return syscall.ENOTEMPTY
		}
		return fs.ToErrno(n.m.fs.retire(p, false))
	})
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok || np.m != n.m {
		return syscall.EXDEV
	}
	if errno := n.m.lock(); errno != 0 {
		return errno
	}
	defer n.m.fs.mu.Unlock()
	from, to := n.path(), np.path()
	for _, dir := range []string{from, to} {
		if err := n.m.fs.touchDir(dir); err != nil {
			return fs.ToErrno(err)
		}
	}
	// A file the rename replaces keeps its inode in the attic, linked
	// there before it loses its name: its directory's durable entries may
	// still name it. An empty directory cannot be linked, so it moves
	// there first.
	target := filepath.Join(to, newName)
	var s syscall.Stat_t
	if flags&(unix.RENAME_EXCHANGE|unix.RENAME_NOREPLACE) == 0 && syscall.Lstat(target, &s) == nil {
		isDir := s.Mode&syscall.S_IFMT == syscall.S_IFDIR
		if err := n.m.fs.retire(target, !isDir); err != nil {
			return fs.ToErrno(err)
		}
	}
	return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
}

// OpendirHandle is the loopback's, with fsync on the handle ours.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fuseFlags, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{FileHandle: fh, n: n}, fuseFlags, 0
}

// dirHandle is an open directory: the loopback's listing, our fsync.
type dirHandle struct {
	fs.FileHandle
	n *node
}

var (
	_ fs.FileReaddirenter = (*dirHandle)(nil)
	_ fs.FileSeekdirer    = (*dirHandle)(nil)
	_ fs.FileReleasedirer = (*dirHandle)(nil)
	_ fs.FileFsyncdirer   = (*dirHandle)(nil)
)

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return d.FileHandle.(fs.FileReaddirenter).Readdirent(ctx)
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	return d.FileHandle.(fs.FileSeekdirer).Seekdir(ctx, off)
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	d.FileHandle.(fs.FileReleasedirer).Releasedir(ctx, flags)
}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return d.n.Fsync(ctx, nil, flags)
}

// Fsync makes a file's data durable, or a directory's entries (and with
// EntriesJournaled every directory's).
func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if errno := n.m.lock(); errno != 0 {
		return errno
	}
	defer n.m.fs.mu.Unlock()
	if h, ok := f.(*handle); ok {
		n.m.fs.synced(h.ino)
		return 0
	}
	var s syscall.Stat_t
	if err := syscall.Lstat(n.path(), &s); err != nil {
		return fs.ToErrno(err)
	}
	if s.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		delete(n.m.fs.dirs, s.Ino)
	}
	n.m.fs.synced(s.Ino)
	return 0
}

// truncate cuts or extends the file with backing inode ino, open on fd,
// to size. f.mu is held.
func (f *FS) truncate(ino uint64, fd int, size int64) error {
	st, err := f.changed(ino, fd)
	if err != nil {
		return err
	}
	if err := st.keep(fd, size, st.size); err != nil {
		return err
	}
	st.lastLen = 0
	return syscall.Ftruncate(fd, size)
}

// truncatePath is truncate for a file not open here. f.mu is held.
func (f *FS) truncatePath(path string, size int64) error {
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var s syscall.Stat_t
	if err := syscall.Fstat(fd, &s); err != nil {
		return err
	}
	return f.truncate(s.Ino, fd, size)
}

// handle is an open file: a descriptor of its backing file.
type handle struct {
	m    *mount
	ino  uint64
	sync bool // opened O_SYNC or O_DSYNC: every write is durable at once

	mu sync.Mutex // guards fd against Release
	fd int        // -1 once released
}

var (
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileGetattrer = (*handle)(nil)
	_ fs.FileStatxer   = (*handle)(nil)
	_ fs.FileLseeker   = (*handle)(nil)
)

func newHandle(m *mount, fd int, flags uint32) (*handle, error) {
	var s syscall.Stat_t
	if err := syscall.Fstat(fd, &s); err != nil {
		return nil, err
	}
	return &handle{m: m, fd: fd, ino: s.Ino, sync: flags&(syscall.O_SYNC|syscall.O_DSYNC) != 0}, nil
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := syscall.Pread(h.fd, dest, off)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if errno := h.m.lock(); errno != 0 {
		return 0, errno
	}
	f := h.m.fs
	defer f.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	st, err := f.changed(h.ino, h.fd)
	if err != nil {
		return 0, fs.ToErrno(err)
	}
	if err := st.keep(h.fd, off, off+int64(len(data))); err != nil {
		return 0, fs.ToErrno(err)
	}
	n, err := syscall.Pwrite(h.fd, data, off)
	if err != nil {
		return 0, fs.ToErrno(err)
	}
	st.lastOff, st.lastLen = off, n
	if h.sync {
		f.synced(h.ino)
	}
	return uint32(n), 0
}

// Flush does nothing: close(2) makes nothing durable.
func (h *handle) Flush(ctx context.Context) syscall.Errno { return 0 }

func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fd < 0 {
		return syscall.EBADF
	}
	err := syscall.Close(h.fd)
	h.fd = -1
	return fs.ToErrno(err)
}

func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	var s syscall.Stat_t
	if err := syscall.Fstat(h.fd, &s); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&s)
	return 0
}

func (h *handle) Statx(ctx context.Context, flags uint32, mask uint32, out *fuse.StatxOut) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	var s unix.Statx_t
	if err := unix.Statx(h.fd, "", int(flags)|unix.AT_EMPTY_PATH, int(mask), &s); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatx(&s)
	return 0
}

func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := unix.Seek(h.fd, int64(off), int(whence))
	return uint64(n), fs.ToErrno(err)
}
