//go:build !unix

package pgtest

import (
	"errors"
	"os"
	"os/exec"
)

type owner struct{ uid, gid int }

func lookupOwner(string) (*owner, error) {
	return nil, errors.New("not supported on this system")
}

func (o *owner) apply(*exec.Cmd) {}

var syscallQuit = os.Kill
