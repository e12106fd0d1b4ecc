// Package tokenstoretest checks that an implementation of [tokenstore.Store]
// behaves as the interface promises, in the manner of testing/fstest.TestFS.
//
// Call [Run] from a test of your store:
//
//	func TestMyStore(t *testing.T) {
//		tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store {
//			return mystore.New(t.TempDir())
//		})
//	}
//
// # Security
//
// The suite uses made-up tokens that start with "canary-". Its failure messages
// print record fields but never token values (only their lengths).
//
// # Testing
//
// tokenstore runs the suite on Memory, File and Encrypted; keyringstore runs it on
// a real Secret Service and on a fake backend that enforces the Windows
// Credential Manager size limit. Run the suite under -race: one subtest uses the
// store from several goroutines.
package tokenstoretest
