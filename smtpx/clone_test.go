package smtpx_test

import (
	"context"
	"crypto/tls"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/smtpx"
)

// TestSenderCloneCopiesEverySetting sets every exported field of a Sender
// to a non-zero value and checks that Clone carries each one over, so that a
// field added to Sender later cannot be forgotten by Clone (a template
// passed through oauthmail.Config would silently lose it).
func TestSenderCloneCopiesEverySetting(t *testing.T) {
	var s smtpx.Sender
	v := reflect.ValueOf(&s).Elem()
	for i := 0; i < v.NumField(); i++ {
		f, sf := v.Field(i), v.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		switch sf.Name {
		case "TLS":
			s.TLS = smtpx.ImplicitTLS
		case "TLSConfig":
			s.TLSConfig = &tls.Config{ServerName: "mail.example"}
		case "TokenSource":
			s.TokenSource = static("tok")
		case "Dialer":
			s.Dialer = &net.Dialer{}
		case "Logger", "Debug", "Now":
			// Shared pointers or funcs; set below where they can be compared.
		default:
			switch f.Kind() {
			case reflect.String:
				f.SetString("x-" + sf.Name)
			case reflect.Bool:
				f.SetBool(true)
			case reflect.Int, reflect.Int64:
				f.SetInt(7)
			case reflect.Slice:
				f.Set(reflect.ValueOf([]string{"a@example.com"}))
			default:
				t.Fatalf("field %s of kind %s: teach this test how to set it", sf.Name, f.Kind())
			}
		}
	}
	var sb strings.Builder
	s.Debug = &sb
	c := s.Clone()
	cv := reflect.ValueOf(c).Elem()
	for i := 0; i < v.NumField(); i++ {
		sf := v.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		switch sf.Name {
		case "TLSConfig":
			if c.TLSConfig == s.TLSConfig || c.TLSConfig.ServerName != "mail.example" {
				t.Errorf("TLSConfig: not a clone of the template's")
			}
		case "Now", "Logger":
			if cv.Field(i).IsNil() != v.Field(i).IsNil() {
				t.Errorf("%s differs", sf.Name)
			}
		default:
			if !reflect.DeepEqual(cv.Field(i).Interface(), v.Field(i).Interface()) {
				t.Errorf("%s: clone has %v, template %v", sf.Name, cv.Field(i), v.Field(i))
			}
		}
	}
	c.SendAs[0] = "changed@example.com"
	if s.SendAs[0] != "a@example.com" {
		t.Error("changing the clone's SendAs changed the template's")
	}
}

// TestSenderUnknownTLSMode: a TLS mode smtpx does not know is refused
// before dialing instead of being taken for STARTTLS.
func TestSenderUnknownTLSMode(t *testing.T) {
	dials := 0
	s := &smtpx.Sender{Addr: "127.0.0.1:1", TLS: smtpx.TLSMode(9), TokenSource: static("tok"),
		Dialer: dialFunc(func(context.Context, string, string) (net.Conn, error) { dials++; return nil, net.ErrClosed })}
	_, err := s.Dial(context.Background())
	if err == nil || dials != 0 {
		t.Fatalf("Dial = %v after %d dials, want a refusal before dialing", err, dials)
	}
	if got := smtpx.ImplicitTLS.String(); got != "implicit TLS" {
		t.Errorf("ImplicitTLS.String() = %q", got)
	}
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}
