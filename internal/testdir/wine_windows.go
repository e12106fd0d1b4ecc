package testdir

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

// Wine returns Wine's version (such as "8.0") when the process runs under
// Wine, and "" otherwise (on Windows itself and elsewhere). It asks ntdll for
// wine_get_version, which only Wine exports.
func Wine() string {
	proc := windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version")
	if proc.Find() != nil {
		return ""
	}
	r, _, _ := proc.Call() // const char *, a static string in ntdll
	if r == 0 {
		return "unknown"
	}
	return windows.BytePtrToString(*(**byte)(unsafe.Pointer(&r)))
}
