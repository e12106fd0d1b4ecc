package devicecode

import (
	"fmt"
	"time"
)

// SecretState is the lifetime state of a client secret. Its values are stable
// strings.
type SecretState string

// The states [CheckSecretExpiry] reports.
const (
	SecretUnknown  SecretState = "unknown"  // no expiry date was given
	SecretValid    SecretState = "valid"    // more than the warning period left
	SecretExpiring SecretState = "expiring" // within the warning period: create the next secret now
	SecretExpired  SecretState = "expired"  // past its expiry: sign-in and refresh fail with ReasonClientSecretExpired
)

// Client-secret expiry: the default warning period and the operator's advice.
const (
	// DefaultSecretWarnDays is the warning period of [CheckSecretExpiry] when
	// warnDays is 0.
	DefaultSecretWarnDays = 30

	// SecretExpiredAdvice is the operator message for ReasonClientSecretExpired
	// (AADSTS7000222): what to do when linking fails because the secret expired.
	SecretExpiredAdvice = "The client secret has expired. Create a new client secret in the app registration " +
		"(Microsoft Entra admin center: App registrations > your app > Certificates & secrets > New client secret), " +
		"then enter its value (not its ID) here and sign in again."
)

// SecretExpiry is the state of a client secret whose expiry date is known.
// Microsoft client secrets last 6 months by default and 2 years at most;
// when one expires, sign-in and refresh stop working until an administrator
// enters a new one.
type SecretExpiry struct {
	State    SecretState
	Expires  time.Time // the expiry date given; zero when State is SecretUnknown
	DaysLeft int       // whole days until Expires; -1 on the day it expired, -2 the day after, ...
	Message  string    // a sentence for an operator, empty for SecretValid and SecretUnknown
}

// CheckSecretExpiry reports the state of a client secret that expires at
// expires, at time now, warning warnDays before: 0 means
// DefaultSecretWarnDays, a negative number never warns. A zero expires gives
// SecretUnknown.
func CheckSecretExpiry(expires time.Time, warnDays int, now time.Time) SecretExpiry {
	if expires.IsZero() {
		return SecretExpiry{State: SecretUnknown}
	}
	if warnDays == 0 {
		warnDays = DefaultSecretWarnDays
	}
	left := expires.Sub(now)
	days := int(left / (24 * time.Hour))
	s := SecretExpiry{Expires: expires, DaysLeft: days}
	date := expires.UTC().Format("2006-01-02")
	switch {
	case !now.Before(expires):
		s.DaysLeft = -int(-left/(24*time.Hour)) - 1 // -1 on the day it expired
		s.State = SecretExpired
		s.Message = fmt.Sprintf("The client secret expired on %s. %s", date, SecretExpiredAdvice)
	case warnDays > 0 && left <= time.Duration(warnDays)*24*time.Hour:
		s.State = SecretExpiring
		s.Message = fmt.Sprintf("The client secret expires on %s (%s). Create a new client secret in the app "+
			"registration (Certificates & secrets) and enter it here before then, or signing in and sending will stop working.",
			date, daysText(days))
	default:
		s.State = SecretValid
	}
	return s
}

func daysText(d int) string {
	switch d {
	case 0:
		return "in less than a day"
	case 1:
		return "in 1 day"
	}
	return fmt.Sprintf("in %d days", d)
}
