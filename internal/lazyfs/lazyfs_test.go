//go:build powerloss

package lazyfs_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/a2abus/a2abus/internal/lazyfs"
)

// mount mounts a lazy filesystem for the test, or fails saying what is
// missing: these tests never skip.
func mount(t *testing.T, opts ...lazyfs.Option) *lazyfs.FS {
	t.Helper()
	if err := lazyfs.Available(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f, err := lazyfs.Mount(filepath.Join(dir, "backing"), filepath.Join(dir, "mnt"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return f
}

// writeFile writes data into the file at path (created if missing,
// truncated first), and fsyncs it when fsync is set.
func writeFile(t *testing.T, path, data string, fsync bool) {
	t.Helper()
	write(t, path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, data, fsync)
}

// appendFile is writeFile appending to an existing file.
func appendFile(t *testing.T, path, data string, fsync bool) {
	t.Helper()
	write(t, path, os.O_WRONLY|os.O_APPEND, data, fsync)
}

func write(t *testing.T, path string, flag int, data string, fsync bool) {
	t.Helper()
	fh, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if fsync {
		if err := fh.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncDir(t *testing.T, path string) {
	t.Helper()
	d, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatalf("fsync %s: %v", path, err)
	}
}

// want checks the file at path holds data, or is missing when data is nil.
func want(t *testing.T, path string, data *string) {
	t.Helper()
	got, err := os.ReadFile(path)
	switch {
	case data == nil && errors.Is(err, os.ErrNotExist):
	case data == nil:
		t.Errorf("%s: got %q (err %v), want it missing", filepath.Base(path), got, err)
	case err != nil:
		t.Errorf("%s: %v, want %q", filepath.Base(path), err, *data)
	case string(got) != *data:
		t.Errorf("%s: got %q, want %q", filepath.Base(path), got, *data)
	}
}

func str(s string) *string { return &s }

func powerLoss(t *testing.T, f *lazyfs.FS, opts ...lazyfs.LossOption) lazyfs.Report {
	t.Helper()
	rep, err := f.PowerLoss(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("power loss: %v", rep)
	return rep
}

// TestSyncedDataSurvives: what a file's fsync covered survives a power
// loss, what was appended after it does not; reads see the latest data
// until then.
func TestSyncedDataSurvives(t *testing.T) {
	f := mount(t)
	p := filepath.Join(f.Dir(), "log")
	writeFile(t, p, "synced", true)
	syncDir(t, f.Dir())
	appendFile(t, p, "+unsynced", false)
	want(t, p, str("synced+unsynced"))
	if pd := f.Pending(); pd.Files != 1 || pd.Dirs != 0 {
		t.Errorf("pending %+v, want one file", pd)
	}
	rep := powerLoss(t, f)
	want(t, p, str("synced"))
	if rep.Files != 1 || rep.Bytes != int64(len("+unsynced")) {
		t.Errorf("report %v, want one file rolled back by %d bytes", rep, len("+unsynced"))
	}
	// Mounted again, it works as before.
	appendFile(t, p, "+again", true)
	want(t, p, str("synced+again"))
	powerLoss(t, f)
	want(t, p, str("synced+again"))
}

// TestUnsyncedDataLost: nothing written since the last fsync survives,
// overwritten pages come back, and a file never fsynced comes back empty.
func TestUnsyncedDataLost(t *testing.T) {
	f := mount(t)
	p := filepath.Join(f.Dir(), "never")
	writeFile(t, p, "written, never synced", false)
	syncDir(t, f.Dir())
	want(t, p, str("written, never synced"))
	powerLoss(t, f)
	want(t, p, str(""))
}

// TestOverwritesAndTruncates runs random writes, truncates and fsyncs on
// one file against a model of what is written and what is synced, and
// checks both: the model's latest bytes before the loss, its synced bytes
// after.
func TestOverwritesAndTruncates(t *testing.T) {
	f := mount(t)
	p := filepath.Join(f.Dir(), "blk")
	writeFile(t, p, "", true)
	syncDir(t, f.Dir())
	r := rand.New(rand.NewPCG(7, 11))
	for round := range 20 {
		fh, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		synced := bytes.Clone(cur)
		for range 1 + r.IntN(30) {
			switch op := r.IntN(10); {
			case op < 6: // a write, anywhere up to a little past the end
				off := r.IntN(len(cur) + 3*4096 + 1)
				data := make([]byte, 1+r.IntN(3*4096))
				for i := range data {
					data[i] = byte('a' + r.IntN(26))
				}
				if _, err := fh.WriteAt(data, int64(off)); err != nil {
					t.Fatal(err)
				}
				if end := off + len(data); end > len(cur) {
					cur = append(cur, make([]byte, end-len(cur))...)
				}
				copy(cur[off:], data)
			case op < 8: // a truncate, shorter or longer
				size := r.IntN(len(cur) + 4096 + 1)
				if err := fh.Truncate(int64(size)); err != nil {
					t.Fatal(err)
				}
				if size < len(cur) {
					cur = cur[:size]
				} else {
					cur = append(cur, make([]byte, size-len(cur))...)
				}
			case op < 9:
				if err := fh.Sync(); err != nil {
					t.Fatal(err)
				}
				synced = bytes.Clone(cur)
			default:
				got, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, cur) {
					t.Fatalf("round %d: reads %d bytes, not the %d latest written", round, len(got), len(cur))
				}
			}
		}
		if err := fh.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, cur) {
			t.Fatalf("round %d: reads %d bytes, not the %d latest written", round, len(got), len(cur))
		}
		if _, err := f.PowerLoss(); err != nil {
			t.Fatal(err)
		}
		got, err = os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, synced) {
			t.Fatalf("round %d: after the power loss %d bytes, not the %d synced", round, len(got), len(synced))
		}
	}
}

// TestNewFileNeedsDirectorySync: a new file's fsync covers its data, not
// its name; without its directory's fsync it is lost, synced data and
// all (EntriesStrict). EntriesJournaled makes the name durable with any
// fsync.
func TestNewFileNeedsDirectorySync(t *testing.T) {
	t.Run("strict", func(t *testing.T) {
		f := mount(t)
		p := filepath.Join(f.Dir(), "new.blk")
		writeFile(t, p, "data", true)
		if pd := f.Pending(); pd.Dirs != 1 {
			t.Errorf("pending %+v, want the root directory", pd)
		}
		rep := powerLoss(t, f)
		want(t, p, nil)
		if len(rep.Dropped) != 1 || rep.Dropped[0] != "new.blk" {
			t.Errorf("report %v, want new.blk dropped", rep)
		}
		writeFile(t, p, "data", true)
		syncDir(t, f.Dir())
		powerLoss(t, f)
		want(t, p, str("data"))
	})
	t.Run("journaled", func(t *testing.T) {
		f := mount(t, lazyfs.WithEntries(lazyfs.EntriesJournaled))
		q := filepath.Join(f.Dir(), "other")
		writeFile(t, q, "unsynced", false)
		p := filepath.Join(f.Dir(), "new.blk")
		writeFile(t, p, "data", true)
		r := filepath.Join(f.Dir(), "later")
		writeFile(t, r, "unsynced", false)
		powerLoss(t, f)
		want(t, p, str("data"))
		// other's name was made before new.blk's fsync: durable, its
		// data not. later's was made after.
		want(t, q, str(""))
		want(t, r, nil)
	})
}

// TestNewDirectoryNeedsParentSync: a directory whose own entries are
// synced is lost with them while its name in its parent is not.
func TestNewDirectoryNeedsParentSync(t *testing.T) {
	f := mount(t)
	d := filepath.Join(f.Dir(), "streams", "A2A")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d, "1.blk")
	writeFile(t, p, "msgs", true)
	syncDir(t, d)
	syncDir(t, filepath.Join(f.Dir(), "streams"))
	powerLoss(t, f)
	want(t, p, nil)
	if _, err := os.Stat(filepath.Join(f.Dir(), "streams")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("streams: %v, want it missing", err)
	}

	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, "msgs", true)
	syncDir(t, d)
	syncDir(t, filepath.Join(f.Dir(), "streams"))
	syncDir(t, f.Dir())
	powerLoss(t, f)
	want(t, p, str("msgs"))
}

// TestRenameFollowsDirectorySync: the write-a-temporary-file-and-rename
// pattern. Until the directory is fsynced a power loss undoes the rename:
// the old file comes back with its synced content, the temporary file
// (created since) is gone.
func TestRenameFollowsDirectorySync(t *testing.T) {
	for _, synced := range []bool{false, true} {
		f := mount(t)
		p := filepath.Join(f.Dir(), "meta.inf")
		tmp := p + ".tmp"
		writeFile(t, p, "v1", true)
		syncDir(t, f.Dir())
		writeFile(t, tmp, "v2", true)
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
		want(t, p, str("v2"))
		if synced {
			syncDir(t, f.Dir())
		}
		powerLoss(t, f)
		if synced {
			want(t, p, str("v2"))
		} else {
			want(t, p, str("v1"))
		}
		want(t, tmp, nil)
	}
}

// TestRenameDirectory: a directory renamed and not synced comes back
// under its old name with what it held.
func TestRenameDirectory(t *testing.T) {
	f := mount(t)
	a, b := filepath.Join(f.Dir(), "msgs"), filepath.Join(f.Dir(), "purged")
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(a, "1.blk"), "one", true)
	syncDir(t, a)
	syncDir(t, f.Dir())
	if err := os.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	want(t, filepath.Join(a, "1.blk"), nil)
	powerLoss(t, f)
	want(t, filepath.Join(a, "1.blk"), str("one"))
	want(t, filepath.Join(b, "1.blk"), nil)
}

// TestUnlinkFollowsDirectorySync: a removed file comes back with its
// synced data until its directory is fsynced.
func TestUnlinkFollowsDirectorySync(t *testing.T) {
	f := mount(t)
	p := filepath.Join(f.Dir(), "2.blk")
	writeFile(t, p, "kept", true)
	syncDir(t, f.Dir())
	appendFile(t, p, "+unsynced", false)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	want(t, p, nil)
	powerLoss(t, f)
	want(t, p, str("kept"))

	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	syncDir(t, f.Dir())
	powerLoss(t, f)
	want(t, p, nil)

	d := filepath.Join(f.Dir(), "obs")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	syncDir(t, f.Dir())
	if err := os.Remove(d); err != nil {
		t.Fatal(err)
	}
	powerLoss(t, f)
	if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
		t.Errorf("removed directory, its removal not synced: %v, want it back", err)
	}
}

// TestOSync: a file opened with O_SYNC has each write durable at once.
func TestOSync(t *testing.T) {
	f := mount(t)
	p := filepath.Join(f.Dir(), "state")
	writeFile(t, p, "", true)
	syncDir(t, f.Dir())
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_SYNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString("durable"); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	powerLoss(t, f)
	want(t, p, str("durable"))
}

// TestTornWrite: with TearLastWrites, a prefix of the last unsynced write
// survives, and nothing else unsynced.
func TestTornWrite(t *testing.T) {
	f := mount(t)
	p := filepath.Join(f.Dir(), "blk")
	writeFile(t, p, "synced|", true)
	syncDir(t, f.Dir())
	appendFile(t, p, "first unsynced|", false)
	last := bytes.Repeat([]byte("0123456789"), 100)
	appendFile(t, p, string(last), false)
	rep := powerLoss(t, f, lazyfs.TearLastWrites(3))
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	head := "synced|" + string(make([]byte, len("first unsynced|")))
	if rep.Torn != 1 || len(got) <= len(head) || len(got) >= len(head)+len(last) ||
		string(got[:len(head)]) != head || !bytes.Equal(got[len(head):], last[:len(got)-len(head)]) {
		t.Errorf("got %q (report %v), want %q then a proper prefix of the last write", got, rep, head)
	}
}

// TestFreeze: a frozen filesystem refuses every change with EIO and
// still reads.
func TestFreeze(t *testing.T) {
	f := mount(t)
	p := filepath.Join(f.Dir(), "f")
	writeFile(t, p, "before", false)
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	f.Freeze()
	for name, op := range map[string]func() error{
		"write":    func() error { _, err := fh.WriteAt([]byte("x"), 0); return err },
		"fsync":    fh.Sync,
		"truncate": func() error { return fh.Truncate(0) },
		"create":   func() error { return os.WriteFile(filepath.Join(f.Dir(), "g"), nil, 0o644) },
		"mkdir":    func() error { return os.Mkdir(filepath.Join(f.Dir(), "d"), 0o755) },
		"rename":   func() error { return os.Rename(p, p+".2") },
		"remove":   func() error { return os.Remove(p) },
	} {
		if err := op(); !errors.Is(err, syscall.EIO) {
			t.Errorf("%s on a frozen filesystem: %v, want EIO", name, err)
		}
	}
	want(t, p, str("before"))
	fh.Close()
	powerLoss(t, f)
	want(t, p, nil)
	writeFile(t, p, "after", false)
	want(t, p, str("after"))
}
