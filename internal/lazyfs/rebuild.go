package lazyfs

import (
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// place is where an inode is in the backing folder now.
type place struct {
	path string
	mode uint32
}

// rebuild replaces the backing tree with what is durable in it, and
// forgets every change. The filesystem is unmounted; f.mu is held.
func (f *FS) rebuild(tear *rand.Rand) (Report, error) {
	var rep Report
	where := map[uint64]place{}
	before := map[string]uint64{} // the tree's paths now, relative, to their inodes
	var rootIno uint64
	for _, top := range []string{f.data(), f.attic()} {
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			var s syscall.Stat_t
			if err := syscall.Lstat(p, &s); err != nil {
				return err
			}
			if p == f.data() {
				rootIno = s.Ino
			}
			if _, ok := where[s.Ino]; !ok {
				where[s.Ino] = place{path: p, mode: s.Mode}
			}
			if top == f.data() && p != top {
				rel, _ := filepath.Rel(top, p)
				before[rel] = s.Ino
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("lazyfs: power loss: walk %s: %w", top, err)
		}
	}

	// Files: back to their last sync.
	for ino, st := range f.files {
		pl, ok := where[ino]
		if !ok || pl.mode&syscall.S_IFMT != syscall.S_IFREG {
			continue
		}
		n, torn, err := restore(pl.path, st, tear)
		if err != nil {
			return rep, fmt.Errorf("lazyfs: power loss: roll back %s: %w", pl.path, err)
		}
		rep.Files++
		rep.Bytes += n
		if torn {
			rep.Torn++
		}
	}

	// Directories: the durable tree, from the root, built beside the old
	// one out of links to the same inodes.
	fresh := filepath.Join(f.backing, "fresh")
	if err := os.RemoveAll(fresh); err != nil {
		return rep, err
	}
	after := map[string]uint64{}
	placed := map[uint64]bool{}
	var build func(ino uint64, rel string) error
	build = func(ino uint64, rel string) error {
		entries, ok := f.dirs[ino]
		if !ok {
			var err error
			if entries, err = listDir(where[ino].path); err != nil {
				return err
			}
		}
		names := make([]string, 0, len(entries))
		for name := range entries {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			c := entries[name]
			pl, ok := where[c]
			if !ok {
				return fmt.Errorf("inode %d of durable entry %s vanished", c, filepath.Join(rel, name))
			}
			crel := filepath.Join(rel, name)
			dst := filepath.Join(fresh, crel)
			switch pl.mode & syscall.S_IFMT {
			case syscall.S_IFDIR:
				if placed[c] {
					continue // a directory has one name; the first durable one wins
				}
				if err := os.Mkdir(dst, fs.FileMode(pl.mode&0o7777)); err != nil {
					return err
				}
				placed[c] = true
				after[crel] = c
				if err := build(c, crel); err != nil {
					return err
				}
				continue
			case syscall.S_IFLNK:
				target, err := os.Readlink(pl.path)
				if err != nil {
					return err
				}
				if err := os.Symlink(target, dst); err != nil {
					return err
				}
			default:
				var err error
				if placed[c] {
					// Durable under two names (a rename across two
					// directories, one of them synced since): two files.
					err = copyFile(pl.path, dst, pl.mode)
				} else {
					err = syscall.Link(pl.path, dst)
				}
				if err != nil {
					return err
				}
			}
			placed[c] = true
			after[crel] = c
		}
		return nil
	}
	if err := os.Mkdir(fresh, fs.FileMode(where[rootIno].mode&0o7777)); err != nil {
		return rep, err
	}
	if err := build(rootIno, ""); err != nil {
		return rep, fmt.Errorf("lazyfs: power loss: rebuild: %w", err)
	}

	old := filepath.Join(f.backing, "old")
	for _, step := range []func() error{
		func() error { return os.RemoveAll(old) },
		func() error { return os.Rename(f.data(), old) },
		func() error { return os.Rename(fresh, f.data()) },
		func() error { return os.RemoveAll(old) },
		func() error { return os.RemoveAll(f.attic()) },
		func() error { return os.Mkdir(f.attic(), 0o700) },
	} {
		if err := step(); err != nil {
			return rep, fmt.Errorf("lazyfs: power loss: swap trees: %w", err)
		}
	}
	clear(f.files)
	clear(f.dirs)

	var dropped []string
	for p, ino := range before {
		if a, ok := after[p]; !ok || a != ino {
			dropped = append(dropped, p)
		}
	}
	for p, ino := range after {
		if b, ok := before[p]; !ok || b != ino {
			rep.Revived++
		}
	}
	slices.Sort(dropped)
	rep.Dropped = dropped
	return rep, nil
}

func copyFile(src, dst string, mode uint32) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fs.FileMode(mode&0o7777))
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
