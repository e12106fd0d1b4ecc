package qrcode_test

import (
	"bytes"
	"errors"
	"image/png"
	"os/exec"
	"strings"
	"testing"

	"rsc.io/qr"

	"github.com/devicemail/devicemail/devicecode/qrcode"
	"github.com/devicemail/devicemail/internal/testpeer"
)

func TestText(t *testing.T) {
	const uri = "https://microsoft.com/devicelogin"
	c, err := qr.Encode(uri, qr.M)
	if err != nil {
		t.Fatal(err)
	}
	text, err := qrcode.Text(uri)
	if err != nil {
		t.Fatal(err)
	}
	q := qrcode.QuietZone
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	n := c.Size + 2*q
	if len(lines) != (n+1)/2 {
		t.Fatalf("%d lines, want %d", len(lines), (n+1)/2)
	}
	for row, line := range lines {
		runes := []rune(line)
		if len(runes) != n {
			t.Fatalf("line %d has %d runes, want %d", row, len(runes), n)
		}
		for col, r := range runes {
			x, y := col-q, 2*row-q
			top, bottom := !c.Black(x, y), y+1 < c.Size+q && !c.Black(x, y+1)
			want := map[[2]bool]rune{{true, true}: '█', {true, false}: '▀', {false, true}: '▄', {false, false}: ' '}[[2]bool{top, bottom}]
			if r != want {
				t.Fatalf("module (%d,%d) = %q, want %q", col, row, r, want)
			}
		}
	}
}

// The PNG holds the same modules as the code, black on white, with the quiet
// zone, scale pixels per module.
func TestPNG(t *testing.T) {
	const uri = "https://example.com/device?user_code=ABCD-EFGH"
	c, _ := qr.Encode(uri, qr.M)
	q := qrcode.QuietZone
	for _, scale := range []int{3, 0} {
		b, err := qrcode.PNG(uri, scale)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		px := scale
		if px == 0 {
			px = 8
		}
		if got, want := img.Bounds().Dx(), (c.Size+2*q)*px; got != want {
			t.Fatalf("scale %d: PNG width %d, want %d", scale, got, want)
		}
		for y := -q; y < c.Size+q; y++ {
			for x := -q; x < c.Size+q; x++ {
				r, _, _, _ := img.At((x+q)*px+px/2, (y+q)*px+px/2).RGBA()
				if black := r == 0; black != c.Black(x, y) {
					t.Fatalf("scale %d: PNG module (%d,%d) black=%v", scale, x, y, black)
				}
			}
		}
	}
}

func TestTooLong(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("x", 8000)
	if _, err := qrcode.Text(long); !errors.Is(err, qrcode.ErrTooLong) {
		t.Errorf("Text: %v, want ErrTooLong", err)
	}
	if _, err := qrcode.PNG(long, 1); !errors.Is(err, qrcode.ErrTooLong) {
		t.Errorf("PNG: %v, want ErrTooLong", err)
	}
}

// Drawing a QR code links neither image/png nor compress/zlib.
func TestDependencies(t *testing.T) {
	goTool := testpeer.LookPath(t, "go")
	for pkg, bad := range map[string][]string{
		".": {"image/png", "compress/zlib", "os/exec"},
	} {
		out, err := exec.Command(goTool, "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := map[string]bool{}
		for _, d := range strings.Fields(string(out)) {
			deps[d] = true
		}
		for _, b := range bad {
			if deps[b] {
				t.Errorf("%s depends on %s", pkg, b)
			}
		}
	}
}
