package outbox

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecodeSpool parses arbitrary message.json and state.json files. A
// spool file either decodes into a message that survives a round trip and
// whose attachment references stay inside the entry directory, or gives a
// *SpoolError; it never panics.
func FuzzDecodeSpool(f *testing.F) {
	now := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	good, _ := encodeSpool(&spoolMessage{Version: 1, Enqueued: now, From: spoolAddress{"Printer", "scanner@contoso.com"},
		To: []spoolAddress{{"", "bob@contoso.com"}}, Subject: "スキャン", Text: "page\r\n.\r\n", MessageID: "abc@contoso.com", Date: now,
		Header: map[string]string{"X-Job": "42"}, Attachments: []spoolAttachment{{Name: "scan.pdf", ContentType: "application/pdf", File: "att-0", Size: 10}}})
	f.Add(good)
	f.Add([]byte(`{"version":1,"to":[{"email":"a@b"}],"attachments":[{"file":"../../etc/passwd"}]}`))
	f.Add([]byte(`{"version":2,"to":[{"email":"a@b"}]}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"to":[{"email":"a@b"}],"extra":1}`))
	f.Add([]byte(`{"version":1,"to":[{"email":"a@b"}]} {}`))
	f.Add([]byte(`{"attempts":3,"last_code":"network","next_attempt":"2026-11-21T09:00:00Z"}`))
	f.Add([]byte(`{"attempts":-1}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		sm, err := decodeSpool("message.json", b)
		if err != nil {
			var se *SpoolError
			if !errors.As(err, &se) {
				t.Fatalf("decodeSpool error %v (%T) is not a *SpoolError", err, err)
			}
		} else {
			for i, a := range sm.Attachments {
				if strings.ContainsAny(a.File, `/\`) || a.File == ".." || a.Size < 0 {
					t.Fatalf("attachment %d file %q accepted", i, a.File)
				}
			}
			if len(sm.To)+len(sm.Cc)+len(sm.Bcc) == 0 {
				t.Fatalf("message without recipients accepted")
			}
			b2, err := encodeSpool(sm)
			if err != nil {
				t.Fatal(err)
			}
			sm2, err := decodeSpool("message.json", b2)
			if err != nil {
				t.Fatalf("re-decode of %s: %v", b2, err)
			}
			if diff := cmp.Diff(sm, sm2); diff != "" {
				t.Fatalf("spool round trip (-first +second):\n%s", diff)
			}
			_ = sm.message(nil)
		}
		st, err := decodeState(b)
		if err == nil {
			if st.Attempts < 0 {
				t.Fatalf("negative attempts accepted")
			}
			b2, _ := encodeState(st)
			st2, err := decodeState(b2)
			if err != nil || !cmp.Equal(st, st2) {
				t.Fatalf("state round trip: %+v vs %+v, %v", st, st2, err)
			}
		} else {
			var se *SpoolError
			if !errors.As(err, &se) {
				t.Fatalf("decodeState error %v is not a *SpoolError", err)
			}
		}
	})
}
