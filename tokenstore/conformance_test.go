package tokenstore_test

import (
	"testing"

	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

func TestMemoryConformance(t *testing.T) {
	tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store { return new(tokenstore.Memory) })
}

func TestFileConformance(t *testing.T) {
	tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store { return &tokenstore.File{Dir: privateDir(t)} })
}

func TestEncryptedConformance(t *testing.T) {
	tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store {
		return &tokenstore.Encrypted{Dir: privateDir(t), Secret: []byte("device-serial-XK42-0000000000001")}
	})
}
