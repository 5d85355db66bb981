// Package lazyfs is a lazy filesystem for tests: a FUSE filesystem that
// passes reads and writes through to a backing folder but remembers what
// was written since each file's last fsync, and what entries each
// directory gained or lost since its last fsync, so that PowerLoss can
// drop all of it, as a power cut drops the page cache. It plays the part
// LazyFS played in Jepsen's analysis of NATS 2.12.1.
//
//	f, err := lazyfs.Mount(backing, mountpoint)
//	if err != nil {
//		return err
//	}
//	defer f.Close()
//	// ... run a server whose store is under mountpoint ...
//	f.Freeze()                   // the power is cut: every later change fails with EIO
//	// ... stop the server ...
//	report, err := f.PowerLoss() // what was not synced is gone; mounted again
//
// # What is durable
//
// A file's data (its bytes and its size) is durable as of its last fsync
// or fdatasync, or as written when the file was opened with O_SYNC or
// O_DSYNC. A directory's entries (names created, removed or renamed in it)
// are durable as of the directory's last fsync: that is POSIX's letter
// (EntriesStrict, the default). WithEntries(EntriesJournaled) makes every
// entry change durable at the next fsync of anything on the filesystem
// too, as a journaling filesystem (ext4, XFS) commits its metadata journal
// when any file is fsynced. A file whose name is not durable is lost with
// its data, synced or not; a directory whose name is not durable is lost
// with everything under it.
//
// Reads always see the latest data while mounted: the backing folder holds
// it, and the filesystem keeps only how to undo it (the size each changed
// file had at its last sync, the pages overwritten or truncated since, and
// each changed directory's entries at its last sync). A removed file or
// directory is moved into an attic beside the backing tree rather than
// deleted, so that its inode and synced data stay until PowerLoss or
// Close: inode numbers are never reused while mounted.
//
// PowerLoss unmounts (the machine goes down), rebuilds the backing tree as
// it was durable, and mounts it again (the machine comes back). With
// TearLastWrites, the last unsynced write of each file survives in part,
// as a write torn by the power cut. Open files of the lost mount fail
// every change with EIO.
//
// Not modelled: permissions, ownership, times and extended attributes (set
// at once); hard links, special files, O_TMPFILE, fallocate and
// copy_file_range are refused (ENOTSUP).
//
// Mounting needs Linux, /dev/fuse and root (mount(2) is called directly;
// when it fails, go-fuse falls back to fusermount3 from the fuse3 package).
// Available says what is missing.
//
// All exported functions and methods are safe for concurrent use.
package lazyfs
