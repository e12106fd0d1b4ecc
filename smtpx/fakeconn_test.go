package smtpx

import (
	"io"
	"net"
)

// readConn is a net.Conn that only reads.
type readConn struct {
	net.Conn
	r io.Reader
}

func (c readConn) Read(p []byte) (int, error) { return c.r.Read(p) }
