package mkv

import (
	"errors"
	"fmt"
)

// muxingApp is written as MuxingApp and WritingApp.
const muxingApp = "tapedeck"

// opusSeekPreRollNS is the Opus SeekPreRoll: decoders need 80 ms of
// audio before a seek point to converge (RFC 7845 section 4.6).
const opusSeekPreRollNS = 80_000_000

// writeHeader builds the file header from the first frame and writes it
// in one call: EBML header, Segment start (unknown size), a Void reserved
// for the SeekHead, Info (with a Void reserved for Duration) and Tracks.
func (w *Writer) writeHeader(keyframe bool, first []byte) error {
	var priv []byte
	width, height := 0, 0
	switch w.codec.name {
	case "opus":
		var err error
		if priv, err = opusHead(w.t.Channels); err != nil {
			return err
		}
	case "h264":
		sps, pps := paramSets(first)
		var err error
		if priv, width, height, err = avcConfig(sps, pps); err != nil {
			return fmt.Errorf("mkv: write frame: %w", err)
		}
	case "av1":
		var err error
		if priv, width, height, err = av1Config(first); err != nil {
			if !errors.Is(err, ErrNeedParameterSets) {
				err = fmt.Errorf("AV1 sequence header: %v: %w", err, ErrBadFrame)
			}
			return fmt.Errorf("mkv: write frame: %w", err)
		}
	case "vp8":
		if keyframe {
			width, height, _ = vp8Size(first)
		}
	case "vp9":
		if keyframe {
			width, height, _ = vp9Size(first)
		}
	}
	if w.codec.video && (w.t.Width == 0 || w.t.Height == 0) {
		w.t.Width, w.t.Height = width, height
	}

	b := make([]byte, 0, 256+len(priv))
	var eb []byte
	eb = appendUint(eb, idEBMLVersion, 1)
	eb = appendUint(eb, idEBMLReadVersion, 1)
	eb = appendUint(eb, idEBMLMaxIDLength, 4)
	eb = appendUint(eb, idEBMLMaxSizeLength, 8)
	eb = appendString(eb, idDocType, w.codec.docType)
	eb = appendUint(eb, idDocTypeVersion, 4)
	eb = appendUint(eb, idDocTypeReadVersion, 2)
	b = appendMaster(b, idEBML, eb)

	b = appendID(b, idSegment)
	w.segSizePos = int64(len(b))
	b = appendSizeN(b, unknownSize, 8)
	w.segData = int64(len(b))

	w.seekHeadPos = int64(len(b))
	b = appendVoid(b, seekHeadSpace)

	var info []byte
	info = appendUint(info, idTimestampScal, timestampScale)
	info = appendString(info, idMuxingApp, muxingApp)
	info = appendString(info, idWritingApp, muxingApp)
	durOff := len(info)
	info = appendVoid(info, durationSpace)
	w.infoPos = int64(len(b))
	b = appendID(b, idInfo)
	b = appendSize(b, uint64(len(info)))
	w.durationPos = int64(len(b) + durOff)
	b = append(b, info...)

	var te []byte
	te = appendUint(te, idTrackNumber, trackNumber)
	te = appendUint(te, idTrackUID, 1)
	if w.codec.video {
		te = appendUint(te, idTrackType, 1)
	} else {
		te = appendUint(te, idTrackType, 2)
	}
	te = appendUint(te, idFlagLacing, 0)
	te = appendString(te, idLanguage, "und")
	te = appendString(te, idCodecID, w.codec.id)
	if priv != nil {
		te = appendBytes(te, idCodecPrivate, priv)
	}
	if w.codec.name == "opus" {
		te = appendUint(te, idCodecDelay, 0)
		te = appendUint(te, idSeekPreRoll, opusSeekPreRollNS)
	}
	if w.codec.video {
		if w.t.Width > 0 && w.t.Height > 0 {
			var v []byte
			v = appendUint(v, idPixelWidth, uint64(w.t.Width))
			v = appendUint(v, idPixelHeight, uint64(w.t.Height))
			te = appendMaster(te, idVideo, v)
		}
	} else {
		var a []byte
		a = appendFloat(a, idSamplingFreq, opusSampleRate)
		a = appendUint(a, idChannels, uint64(w.t.Channels))
		te = appendMaster(te, idAudio, a)
	}
	w.tracksPos = int64(len(b))
	b = appendMaster(b, idTracks, appendMaster(nil, idTrackEntry, te))

	if err := w.write(b, "header"); err != nil {
		return err
	}
	w.started = true
	return nil
}
