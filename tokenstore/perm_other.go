//go:build !unix

package tokenstore

// permBits is false: Windows (and js, wasip1, plan9) files have no Unix
// permission bits for the stores to check; access is left to the platform's
// ACLs or equivalents.
const permBits = false
