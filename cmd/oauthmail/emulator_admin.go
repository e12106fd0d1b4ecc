package main

import (
	"flag"
	"time"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// emulatorFidelity holds the emulator command's flags for behaviours where
// the in-process test helper picks fast defaults and the command picks
// Microsoft's.
type emulatorFidelity struct {
	errorDelay *time.Duration
}

// addFidelityFlags registers those flags on fs.
func addFidelityFlags(fs *flag.FlagSet) *emulatorFidelity {
	return &emulatorFidelity{
		errorDelay: fs.Duration("smtp-error-delay", oauthmailtest.Tarpit,
			"how long the SMTP side waits before an error reply, as Exchange Online's tarpit does (0: answer at once)"),
	}
}

// apply sets the options the flags stand for.
func (f *emulatorFidelity) apply(o *oauthmailtest.Options) {
	o.ErrorDelay = *f.errorDelay
}
