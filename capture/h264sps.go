package capture

import (
	"errors"
	"fmt"
)

// bitReader reads an H.264 RBSP bit by bit, skipping emulation prevention
// bytes (00 00 03).
type bitReader struct {
	b     []byte
	pos   int // byte position
	bit   uint
	zeros int
}

var errShortSPS = errors.New("short SPS")

func (r *bitReader) readBit() (uint, error) {
	if r.pos >= len(r.b) {
		return 0, errShortSPS
	}
	if r.bit == 0 {
		// Entering a new byte: skip an emulation prevention byte.
		if r.zeros >= 2 && r.b[r.pos] == 3 {
			r.pos++
			r.zeros = 0
			if r.pos >= len(r.b) {
				return 0, errShortSPS
			}
		}
		if r.b[r.pos] == 0 {
			r.zeros++
		} else {
			r.zeros = 0
		}
	}
	v := uint(r.b[r.pos]>>(7-r.bit)) & 1
	r.bit++
	if r.bit == 8 {
		r.bit = 0
		r.pos++
	}
	return v, nil
}

func (r *bitReader) readBits(n int) (uint, error) {
	var v uint
	for i := 0; i < n; i++ {
		b, err := r.readBit()
		if err != nil {
			return 0, err
		}
		v = v<<1 | b
	}
	return v, nil
}

// ue reads an unsigned Exp-Golomb code.
func (r *bitReader) ue() (uint, error) {
	zeros := 0
	for {
		b, err := r.readBit()
		if err != nil {
			return 0, err
		}
		if b == 1 {
			break
		}
		zeros++
		if zeros > 31 {
			return 0, errors.New("bad exp-golomb code")
		}
	}
	rest, err := r.readBits(zeros)
	if err != nil {
		return 0, err
	}
	return (1<<zeros - 1) + rest, nil
}

func (r *bitReader) se() (int, error) {
	v, err := r.ue()
	if err != nil {
		return 0, err
	}
	if v&1 == 1 {
		return int(v+1) / 2, nil
	}
	return -int(v / 2), nil
}

// h264Size returns the cropped picture size from an SPS NAL unit (with its
// one-byte NAL header), following ITU-T H.264 7.3.2.1.1.
func h264Size(nal []byte) (int, int, error) {
	if len(nal) < 4 || nal[0]&0x1f != 7 {
		return 0, 0, errors.New("h264: not an SPS")
	}
	r := &bitReader{b: nal[1:]}
	must := func(v uint, err error) uint {
		if err != nil && r.b != nil {
			r.b = nil
		}
		return v
	}
	profile := must(r.readBits(8))
	must(r.readBits(16)) // constraint flags, level
	must(r.ue())         // seq_parameter_set_id
	chromaFormat := uint(1)
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chromaFormat = must(r.ue())
		if chromaFormat == 3 {
			must(r.readBits(1)) // separate_colour_plane_flag
		}
		must(r.ue())                  // bit_depth_luma_minus8
		must(r.ue())                  // bit_depth_chroma_minus8
		must(r.readBits(1))           // qpprime_y_zero_transform_bypass_flag
		if must(r.readBits(1)) == 1 { // seq_scaling_matrix_present_flag
			n := 8
			if chromaFormat == 3 {
				n = 12
			}
			for i := 0; i < n; i++ {
				if must(r.readBits(1)) == 0 {
					continue
				}
				size := 16
				if i >= 6 {
					size = 64
				}
				last, next := 8, 8
				for j := 0; j < size && r.b != nil; j++ {
					if next != 0 {
						d, err := r.se()
						if err != nil {
							return 0, 0, fmt.Errorf("h264: sps scaling list: %w", err)
						}
						next = (last + d + 256) % 256
					}
					if next != 0 {
						last = next
					}
				}
			}
		}
	}
	must(r.ue()) // log2_max_frame_num_minus4
	pocType := must(r.ue())
	switch pocType {
	case 0:
		must(r.ue())
	case 1:
		must(r.readBits(1))
		if _, err := r.se(); err != nil {
			return 0, 0, fmt.Errorf("h264: sps: %w", err)
		}
		if _, err := r.se(); err != nil {
			return 0, 0, fmt.Errorf("h264: sps: %w", err)
		}
		n := must(r.ue())
		for i := uint(0); i < n && r.b != nil; i++ {
			if _, err := r.se(); err != nil {
				return 0, 0, fmt.Errorf("h264: sps: %w", err)
			}
		}
	}
	must(r.ue())        // max_num_ref_frames
	must(r.readBits(1)) // gaps_in_frame_num_value_allowed_flag
	wMbs := must(r.ue()) + 1
	hMapUnits := must(r.ue()) + 1
	frameMbsOnly := must(r.readBits(1))
	if frameMbsOnly == 0 {
		must(r.readBits(1)) // mb_adaptive_frame_field_flag
	}
	must(r.readBits(1)) // direct_8x8_inference_flag
	var cl, cr, ct, cb uint
	if must(r.readBits(1)) == 1 { // frame_cropping_flag
		cl, cr, ct, cb = must(r.ue()), must(r.ue()), must(r.ue()), must(r.ue())
	}
	if r.b == nil {
		return 0, 0, errors.New("h264: sps: truncated")
	}
	cropX, cropY := uint(1), 2-frameMbsOnly
	if chromaFormat == 1 {
		cropX, cropY = 2, 2*(2-frameMbsOnly)
	} else if chromaFormat == 2 {
		cropX, cropY = 2, 2-frameMbsOnly
	}
	w := int(wMbs*16) - int(cropX*(cl+cr))
	h := int((2-frameMbsOnly)*hMapUnits*16) - int(cropY*(ct+cb))
	if w <= 0 || h <= 0 || w > 16384 || h > 16384 {
		return 0, 0, fmt.Errorf("h264: sps: implausible size %dx%d", w, h)
	}
	return w, h, nil
}
