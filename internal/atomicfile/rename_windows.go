package atomicfile

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/windows"
)

// heldOpen reports whether err, from an operation on path, means that
// another handle holds path open without sharing it: a sharing violation, or
// "Access is denied" while path cannot be opened for DELETE because of a
// sharing violation (rather than because of its permissions).
func heldOpen(err error, path string) bool {
	switch {
	case errors.Is(err, windows.ERROR_SHARING_VIOLATION), errors.Is(err, windows.ERROR_LOCK_VIOLATION):
		return true
	case !errors.Is(err, windows.ERROR_ACCESS_DENIED):
		return false
	}
	p, perr := windows.UTF16PtrFromString(path)
	if perr != nil {
		return false
	}
	h, oerr := windows.CreateFile(p, windows.DELETE,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_EXISTING, windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
	if oerr == nil {
		// Released meanwhile: worth another try, unless the file is
		// read-only (which also makes a rename over it "Access is denied").
		var info windows.ByHandleFileInformation
		ierr := windows.GetFileInformationByHandle(h, &info)
		windows.CloseHandle(h)
		return ierr == nil && info.FileAttributes&windows.FILE_ATTRIBUTE_READONLY == 0
	}
	return errors.Is(oerr, windows.ERROR_SHARING_VIOLATION)
}

// openShared opens path for reading with FILE_SHARE_DELETE, so that holding
// it open does not keep a Save from renaming over it or a reap from removing
// it.
func openShared(path string) (*os.File, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	h, err := windows.CreateFile(p, windows.GENERIC_READ,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_EXISTING, windows.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(h), path), nil
}
