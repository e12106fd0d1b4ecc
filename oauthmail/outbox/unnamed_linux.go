//go:build linux

package outbox

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// createUnnamed creates a file without a name in dir (open(2) O_TMPFILE),
// for linkUnnamed to name once it is complete and synced.
func createUnnamed(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)")), nil
}

// linkUnnamed gives the unnamed file f the name path, failing if path
// exists. It links /proc/self/fd/N with AT_SYMLINK_FOLLOW, the way open(2)
// describes for O_TMPFILE files (AT_EMPTY_PATH would need
// CAP_DAC_READ_SEARCH).
func linkUnnamed(f *os.File, path string) error {
	err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		return &os.LinkError{Op: "link", Old: f.Name(), New: path, Err: err}
	}
	return nil
}

// probeUnnamed reports whether dir's file system makes unnamed files and
// /proc lets them be linked (O_TMPFILE needs Linux 3.11 and a file system
// that has it: ext4, XFS, Btrfs, tmpfs; /proc may be missing in a
// container).
func probeUnnamed(dir string) bool {
	f, err := createUnnamed(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	name := filepath.Join(dir, "probe-"+randHex(6))
	if linkUnnamed(f, name) != nil {
		return false
	}
	os.Remove(name)
	return true
}
