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
	errorDelay         *time.Duration
	tokenLife, lifeMax *time.Duration
}

// addFidelityFlags registers those flags on fs.
func addFidelityFlags(fs *flag.FlagSet) *emulatorFidelity {
	return &emulatorFidelity{
		errorDelay: fs.Duration("smtp-error-delay", oauthmailtest.Tarpit,
			"how long the SMTP side waits before an error reply, as Exchange Online's tarpit does (0: answer at once)"),
		tokenLife: fs.Duration("token-lifetime", time.Hour,
			"shortest access token lifetime (expires_in)"),
		lifeMax: fs.Duration("token-lifetime-max", 90*time.Minute,
			"longest access token lifetime: each token's is drawn between the two, as Entra's 60 to 90 minutes (set it to --token-lifetime to fix it)"),
	}
}

// apply sets the options the flags stand for.
func (f *emulatorFidelity) apply(o *oauthmailtest.Options) {
	o.ErrorDelay = *f.errorDelay
	o.AccessTokenLifetime, o.AccessTokenLifetimeMax = *f.tokenLife, *f.lifeMax
}
