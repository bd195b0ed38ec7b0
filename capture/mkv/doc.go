// Package mkv writes received WebRTC media tracks to Matroska/WebM files
// as they arrive, and reads back what such a file holds.
//
// # Writing
//
// A Writer stores the frames of one track untouched (H.264 access units
// are only re-framed from Annex B start codes to length prefixes, and AV1
// temporal delimiters are dropped, as the Matroska codec mappings ask).
// File time 0 is the first frame's RTP timestamp: the caller passes
// timestamps relative to it.
//
// The file survives the process being killed at any moment:
//
//   - The header (EBML header, Segment start, Info, Tracks) is written in
//     one Write at the first frame, since H.264 and AV1 need data from
//     that frame in CodecPrivate.
//   - The Segment has unknown size, so a reader takes everything up to the
//     end of the file.
//   - Frames are SimpleBlocks gathered in memory and written as one
//     complete Cluster of known size, with a single Write, when a video
//     keyframe arrives, when the cluster would span 1 s or more, or on
//     Flush and Close. A killed process therefore leaves whole clusters
//     only (short of a torn write at the file system level), and loses at
//     most the last second of frames, or what was buffered since the last
//     Flush when frames stop arriving.
//
// Close on an io.WriteSeeker (such as the file New creates) finalizes the
// file: it appends Cues (one per cluster that starts with a keyframe, or
// per cluster for audio), then patches the Segment size, the Info
// Duration and a SeekHead into space reserved in the header, so players
// get a duration and seek fast. Each of those steps leaves a valid file
// if the process dies in between.
//
// # Timestamps
//
// The TimestampScale is 1 ms: a frame's time is its RTP timestamp
// converted to milliseconds and rounded to the nearest one, so it is off
// by at most 0.5 ms. Rounding never reorders frames.
//
// # Scanning
//
// Scan reads a file made by a Writer, closed or not, and tells how many
// frames it holds, their time span, and where the last complete cluster
// ends, for crash recovery.
package mkv

import "errors"

// Sentinel errors. Errors returned by this package wrap them, with
// context, where they apply: test with errors.Is.
var (
	// ErrNeedParameterSets is returned by WriteFrame when the first frame
	// of an H.264 track lacks an SPS or a PPS, or the first frame of an AV1
	// track lacks a sequence header: the file header needs them. Nothing
	// is written; pass a keyframe that carries them.
	ErrNeedParameterSets = errors.New("first frame needs codec parameter sets (H.264 SPS and PPS, AV1 sequence header)")

	// ErrUnsupportedCodec is returned by New and NewWith for a codec or
	// channel layout the writer cannot store.
	ErrUnsupportedCodec = errors.New("unsupported codec")

	// ErrTimestamp is returned by WriteFrame for a negative pts or one
	// smaller than the previous frame's.
	ErrTimestamp = errors.New("pts out of order")

	// ErrBadFrame is returned by WriteFrame for an empty frame or one whose
	// bitstream framing cannot be read (H.264 Annex B, AV1 OBUs).
	ErrBadFrame = errors.New("bad frame")

	// ErrClosed is returned by WriteFrame and Flush after Close.
	ErrClosed = errors.New("writer closed")

	// ErrNotMatroska is returned by Scan for data that does not start
	// with an EBML header of DocType "webm" or "matroska".
	ErrNotMatroska = errors.New("not a Matroska/WebM file")
)
