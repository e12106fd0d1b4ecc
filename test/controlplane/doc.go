// Package controlplane tests the emulator command's admin API from another
// language: TestPythonControlPlane runs controlplane.py (Python standard
// library only) against "oauthmail emulator". Without python3 the test skips
// with the reason; with DEVICEMAIL_REQUIRE_PEERS=1 (CI) it fails instead.
package controlplane
