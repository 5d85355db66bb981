package lazyfs

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Entries says when a change to a directory's entries becomes durable.
type Entries int

const (
	// EntriesStrict: when the directory is fsynced (POSIX's letter).
	EntriesStrict Entries = iota
	// EntriesJournaled: also when anything on the filesystem is
	// fsynced, as ext4 and XFS commit their metadata journal.
	EntriesJournaled
)

func (e Entries) String() string {
	switch e {
	case EntriesStrict:
		return "strict"
	case EntriesJournaled:
		return "journaled"
	}
	return fmt.Sprintf("Entries(%d)", int(e))
}

// Option configures Mount.
type Option func(*config)

type config struct {
	entries Entries
}

// WithEntries sets when directory entries become durable (default
// EntriesStrict).
func WithEntries(e Entries) Option { return func(c *config) { c.entries = e } }

// FS is a mounted lazy filesystem.
type FS struct {
	backing string // holds data (the tree), attic, and the rebuild's scratch folders
	mnt     string
	cfg     config

	mu     sync.Mutex
	cur    *mount
	closed bool
	// files are the files changed since their last sync, by backing inode.
	files map[uint64]*fileState
	// dirs are the directories whose entries changed since their last
	// sync, by backing inode: their entries (name to inode) at that sync.
	dirs map[uint64]map[string]uint64
}

// mount is one mount of the filesystem: PowerLoss ends one and starts
// the next. Its nodes and handles refuse every change once it is frozen.
type mount struct {
	fs     *FS
	server *fuse.Server
	frozen bool // guarded by fs.mu
}

// Available returns nil when this process can mount a lazy filesystem,
// else an error (wrapping ErrUnavailable) that says what to install or
// change.
func Available() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("%w: needs Linux, this is %s", ErrUnavailable, runtime.GOOS)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("%w: no /dev/fuse (%v): load the kernel's fuse module (modprobe fuse), or give a container the device (docker run --device /dev/fuse --cap-add SYS_ADMIN)", ErrUnavailable, err)
	}
	if os.Geteuid() == 0 {
		return nil // mount(2) directly
	}
	for _, bin := range []string{"fusermount3", "fusermount"} {
		if _, err := exec.LookPath(bin); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: not root, and no fusermount3 to mount as a user: run as root, or install fuse3 (apt-get install fuse3)", ErrUnavailable)
}

// Mount mounts a lazy filesystem at mountpoint (created if missing) over
// the backing folder (created if missing; its subfolder data holds the
// files, taken as durable at the start).
func Mount(backing, mountpoint string, opts ...Option) (*FS, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	f := &FS{backing: backing, mnt: mountpoint, files: map[uint64]*fileState{}, dirs: map[uint64]map[string]uint64{}}
	for _, o := range opts {
		o(&f.cfg)
	}
	if err := os.MkdirAll(f.data(), 0o755); err != nil {
		return nil, fmt.Errorf("lazyfs: backing folder: %w", err)
	}
	// An attic left by a process that died while mounted holds nothing
	// durable.
	if err := os.RemoveAll(f.attic()); err != nil {
		return nil, fmt.Errorf("lazyfs: attic: %w", err)
	}
	if err := os.Mkdir(f.attic(), 0o700); err != nil {
		return nil, fmt.Errorf("lazyfs: attic: %w", err)
	}
	if err := os.MkdirAll(mountpoint, 0o755); err != nil {
		return nil, fmt.Errorf("lazyfs: mountpoint: %w", err)
	}
	m, err := f.mount()
	if err != nil {
		return nil, err
	}
	f.cur = m
	return f, nil
}

func (f *FS) data() string  { return filepath.Join(f.backing, "data") }
func (f *FS) attic() string { return filepath.Join(f.backing, "attic") }

// Dir returns the mountpoint.
func (f *FS) Dir() string { return f.mnt }

func (f *FS) mount() (*mount, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(f.data(), &st); err != nil {
		return nil, fmt.Errorf("lazyfs: %w", err)
	}
	m := &mount{fs: f}
	root := &fs.LoopbackRoot{Path: f.data(), Dev: uint64(st.Dev)}
	rn := &node{LoopbackNode: &fs.LoopbackNode{RootData: root}, m: m}
	root.RootNode = rn
	// Nothing cached by the kernel: every lookup, attribute and read
	// comes here, so that what a reader sees is the backing folder's,
	// before a power loss and after.
	var zero time.Duration
	srv, err := fs.Mount(f.mnt, rn, &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMount: true,
			FsName:      "lazyfs:" + f.backing,
			Name:        "lazyfs",
			MaxWrite:    1 << 20,
		},
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
	})
	if err != nil {
		return nil, fmt.Errorf("lazyfs: mount %s: %w (root mounts with mount(2); others need fusermount3: apt-get install fuse3)", f.mnt, err)
	}
	m.server = srv
	return m, nil
}

// Pending says what a power loss would drop now, in numbers: files
// changed since their last sync and directories whose entries changed
// since theirs.
type Pending struct {
	Files, Dirs int
}

// Pending returns what is not durable now.
func (f *FS) Pending() Pending {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Pending{Files: len(f.files), Dirs: len(f.dirs)}
}

// Sync makes everything durable, as sync(2) would.
func (f *FS) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	if f.cur.frozen {
		return syscall.EIO
	}
	clear(f.files)
	clear(f.dirs)
	return nil
}

// Freeze cuts the power as far as the filesystem's users can tell: from
// its return on, every change (write, truncate, create, remove, rename,
// fsync) fails with EIO. Reads go on. PowerLoss ends the freeze.
func (f *FS) Freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur != nil {
		f.cur.frozen = true
	}
}

// LossOption configures a PowerLoss.
type LossOption func(*lossConfig)

type lossConfig struct {
	tear *rand.Rand
}

// TearLastWrites makes the last unsynced write of each file survive in
// part: a prefix of it, of a length drawn from a generator seeded with
// seed, from one byte to all but one.
func TearLastWrites(seed uint64) LossOption {
	return func(c *lossConfig) { c.tear = rand.New(rand.NewPCG(seed, seed^0x1a2f5)) }
}

// Report is what a PowerLoss dropped.
type Report struct {
	Files int   // files rolled back to their last sync
	Bytes int64 // unsynced bytes dropped: data written past the synced size, and pages overwritten or cut
	Torn  int   // files whose last unsynced write survives in part
	// Dropped are the paths (relative, sorted) that existed before the loss
	// and do not after it, a directory's and everything under it;
	// Revived counts those that did not and do (removed or renamed away
	// since their directory's sync).
	Dropped []string
	Revived int
}

func (r Report) String() string {
	return fmt.Sprintf("%d files rolled back (%d unsynced bytes dropped, %d torn), %d paths dropped %v, %d revived",
		r.Files, r.Bytes, r.Torn, len(r.Dropped), r.Dropped[:min(len(r.Dropped), 10)], r.Revived)
}

// PowerLoss cuts the power (Freeze, if not frozen yet), unmounts, drops
// everything not durable (see the package documentation), and mounts the
// durable state again, unfrozen. Stop the filesystem's users first: files
// they still hold open keep the lost mount busy, which is then detached
// lazily.
func (f *FS) PowerLoss(opts ...LossOption) (Report, error) {
	var lc lossConfig
	for _, o := range opts {
		o(&lc)
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return Report{}, ErrClosed
	}
	old := f.cur
	old.frozen = true
	f.mu.Unlock()

	unmount(old)

	f.mu.Lock()
	defer f.mu.Unlock()
	rep, err := f.rebuild(lc.tear)
	if err != nil {
		return rep, err
	}
	m, err := f.mount()
	if err != nil {
		f.closed = true
		return rep, err
	}
	f.cur = m
	return rep, nil
}

// Close unmounts. The backing folder keeps the latest data, as a clean
// shutdown would have written it.
func (f *FS) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	m := f.cur
	m.frozen = true
	f.mu.Unlock()
	unmount(m)
	return os.RemoveAll(f.attic())
}

// unmount unmounts m, lazily (detached) when files are still open on it
// after a few tries (each of which go-fuse tries five times).
func unmount(m *mount) {
	for range 4 {
		if m.server.Unmount() == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Unmount(m.fs.mnt, syscall.MNT_DETACH)
}
