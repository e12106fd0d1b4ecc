// Package qrcode draws a sign-in URL as a QR code, for a terminal (Text) or a
// web page or display (PNG), so that the user can open the verification page
// with a phone instead of typing it:
//
//	p, err := cfg.Start(ctx)
//	...
//	if s, err := qrcode.Text(p.QRURI()); err == nil {
//		fmt.Fprint(os.Stderr, s)
//	}
//
// It is a package of its own so that a device that shows the code and URL as
// text, or draws the QR code itself, links none of it. It uses rsc.io/qr, and
// its PNG encoder is the small one of that package: neither image/png nor
// compress/zlib is linked.
package qrcode

import (
	"errors"
	"strings"

	"rsc.io/qr"
)

// QuietZone is the light border drawn around a code, in modules: the four
// that ISO/IEC 18004 asks for, so that phone scanners find the code.
const QuietZone = 4

// ErrTooLong is returned when the text does not fit in a QR code.
var ErrTooLong = errors.New("qrcode: URL too long for a QR code")

// encode encodes s at error-correction level M (about 15% of the code may be
// damaged and it still reads).
func encode(s string) (*qr.Code, error) {
	c, err := qr.Encode(s, qr.M)
	if err != nil {
		return nil, ErrTooLong
	}
	return c, nil
}

// Text returns a QR code of s drawn with Unicode half blocks, two modules per
// text line, with the quiet zone; every line ends in "\n". Light modules are
// drawn as ink, so the code reads correctly on the usual light-on-dark
// terminal; on a dark-on-light terminal it is inverted, which most phone
// scanners accept too.
func Text(s string) (string, error) {
	c, err := encode(s)
	if err != nil {
		return "", err
	}
	light := func(x, y int) bool { return !c.Black(x, y) } // the quiet zone is light
	var b strings.Builder
	lo, hi := -QuietZone, c.Size+QuietZone
	for y := lo; y < hi; y += 2 {
		for x := lo; x < hi; x++ {
			top := light(x, y)
			bottom := y+1 < hi && light(x, y+1)
			switch {
			case top && bottom:
				b.WriteRune('█')
			case top:
				b.WriteRune('▀')
			case bottom:
				b.WriteRune('▄')
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// PNG returns a QR code of s as a black-on-white PNG (1 bit per pixel) with
// the quiet zone, scale pixels per module: scale <= 0 means 8, and scale is
// at most 64.
func PNG(s string, scale int) ([]byte, error) {
	c, err := encode(s)
	if err != nil {
		return nil, err
	}
	if scale <= 0 {
		scale = 8
	}
	c.Scale = min(scale, 64)
	return c.PNG(), nil
}
