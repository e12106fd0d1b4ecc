package oauthmail

import (
	"errors"
	"syscall"
)

// deviceWriteFailure reports whether err is one of Windows' own codes for a
// disk that cannot take the write: syscall.ENOSPC and EROFS are Unix codes
// that no Windows call returns
// (https://learn.microsoft.com/en-us/windows/win32/debug/system-error-codes--0-499-).
func deviceWriteFailure(err error) bool {
	const (
		errorWriteProtect      = 19
		errorHandleDiskFull    = 39
		errorDiskFull          = 112
		errorDiskQuotaExceeded = 1295
	)
	for _, n := range []syscall.Errno{errorWriteProtect, errorHandleDiskFull, errorDiskFull, errorDiskQuotaExceeded} {
		if errors.Is(err, n) {
			return true
		}
	}
	return false
}
