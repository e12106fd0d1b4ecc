package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// login with a device code for an app without the Graph permission signs
// in, and warns which permission to add and where; status repeats it. With
// the permission, no warning.
func TestLoginWarnsWithoutGraphConsent(t *testing.T) {
	for _, granted := range []bool{false, true} {
		e := oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "alice@contoso.com"})
		if granted {
			e.Update(func(d *oauthmailtest.Directory) {
				for _, a := range d.Apps {
					if a.ClientID == oauthmailtest.DeviceAppClientID {
						a.Permissions = append(a.Permissions, "https://graph.microsoft.com/Mail.Send")
					}
				}
			})
		}
		dir := testdir.New(t)
		ca := filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(ca, e.CAPEM(), 0o600); err != nil {
			t.Fatal(err)
		}
		store := []string{"--store", "file:" + filepath.Join(dir, "tokens"), "--account", "printer"}
		r := runCmd(t, nil, append([]string{"login", "--tenant", oauthmailtest.ContosoTenantID, "--client-id",
			oauthmailtest.DeviceAppClientID, "--authority", e.URL(), "--ca-file", ca}, store...)...)
		if r.status != 0 {
			t.Fatalf("login exit %d: %s", r.status, r.stderr)
		}
		warned := strings.Contains(r.stderr, "WARNING: ")
		if warned == granted {
			t.Fatalf("granted %v: login stderr:\n%s", granted, r.stderr)
		}
		if !granted {
			for _, want := range []string{"Mail.Send", "Microsoft Graph", "Delegated", "API permissions", "Grant admin consent", "SMTP"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("the warning does not say %q:\n%s", want, r.stderr)
				}
			}
		}
		st := runCmd(t, nil, append([]string{"status"}, store...)...)
		if st.status != 0 || strings.Contains(st.stdout, "WARNING:      The app has no consent") == granted {
			t.Errorf("granted %v: status exit %d:\n%s", granted, st.status, st.stdout)
		}
	}
}
