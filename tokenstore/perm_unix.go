//go:build unix

package tokenstore

// permBits tells whether files have Unix permission bits that the stores check
// (see PermissionError).
const permBits = true
