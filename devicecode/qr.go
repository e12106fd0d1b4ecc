package devicecode

import (
	"bytes"
	"image"
	"image/png"
	"strings"

	"rsc.io/qr"
)

// quietZone is the light border a QR code needs around it, in modules
// (ISO/IEC 18004 asks for four).
const quietZone = 4

// QRText returns a QR code of p's verification URI (the complete one when the
// server sent it, see [Prompt.QRURI]) drawn with Unicode half blocks, two
// modules per text line, with the quiet zone. Light modules are drawn as ink,
// so the code reads correctly on the usual light-on-dark terminal; on a
// dark-on-light terminal it is inverted, which most phone scanners accept too.
func (p *Prompt) QRText() (string, error) {
	c, err := qr.Encode(p.QRURI(), qr.M)
	if err != nil {
		return "", &Error{Reason: ReasonProtocol, Description: "verification URI too long for a QR code"}
	}
	return qrText(c), nil
}

// QRPNG returns a QR code of p's verification URI (see [Prompt.QRURI]) as a
// black-on-white PNG with the quiet zone, scale pixels per module (scale <= 0
// means 8).
func (p *Prompt) QRPNG(scale int) ([]byte, error) {
	c, err := qr.Encode(p.QRURI(), qr.M)
	if err != nil {
		return nil, &Error{Reason: ReasonProtocol, Description: "verification URI too long for a QR code"}
	}
	return qrPNG(c, scale)
}

// light reports whether module (x, y) is light; the quiet zone is light.
func light(c *qr.Code, x, y int) bool { return !c.Black(x, y) }

func qrText(c *qr.Code) string {
	var b strings.Builder
	lo, hi := -quietZone, c.Size+quietZone
	for y := lo; y < hi; y += 2 {
		for x := lo; x < hi; x++ {
			top := light(c, x, y)
			bottom := y+1 < hi && light(c, x, y+1)
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
	return b.String()
}

func qrPNG(c *qr.Code, scale int) ([]byte, error) {
	if scale <= 0 {
		scale = 8
	}
	scale = min(scale, 64)
	n := (c.Size + 2*quietZone) * scale
	img := image.NewGray(image.Rect(0, 0, n, n))
	for py := 0; py < n; py++ {
		for px := 0; px < n; px++ {
			v := uint8(0xff)
			if c.Black(px/scale-quietZone, py/scale-quietZone) {
				v = 0
			}
			img.Pix[py*img.Stride+px] = v
		}
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
