// Package render turns a timeline.Plan into finished files with FFmpeg: the
// composite video (every layout of the plan, placeholders, labels,
// background, overlays, captions), the audio mix, and the muxed outputs of
// one or more profiles (MP4, WebM, HLS, M4A).
//
// The work is split in two:
//
//   - Compile is a pure function from a plan and Settings to a Program: the
//     FFmpeg argument lists and the small text files (labels, subtitles,
//     concat lists) they read. It runs nothing, so golden tests pin it down.
//   - Render runs a Program: video jobs in parallel (bounded), the audio mix
//     alongside them, then one mux per profile. Each FFmpeg runs niced, its
//     progress is read from -progress, a cancelled context kills it and
//     removes partial output, and a failure carries the command and the tail
//     of FFmpeg's stderr.
//
// Both are plain Go: graph.go assembles filter graphs, os/exec runs FFmpeg.
// ffmpeg-go is used in one place, probe.go, to run ffprobe on each WebM and
// HLS output before it is published and on the files of an export (see the
// comment there for why no further). MP4 and M4A outputs are checked from
// their boxes, read in Go (mp4box.go), which spares an ffprobe start each.
//
// How a plan becomes video. Interval boundaries are quantized to output
// frames (frame k is the instant k/fps; an interval shorter than a frame is
// merged into its neighbour), then consecutive intervals with the same tiles
// (who, where, how drawn) form a scene. A job (one FFmpeg process) renders
// consecutive scenes, each a subgraph: a background canvas at the output
// frame rate, then per tile a placeholder (drawn during the frames it
// shows) and its video pieces. A piece is one input, seeked near its start,
// whose frames are placed on the output clock by setpts through the plan's
// mapping (file time f plays at Start + (f − FileStart)/Speed), shifted by
// half a frame so that the overlay's "latest frame not after t" picks the
// source frame nearest to each output frame; it is scaled per frame into
// its tile keeping its aspect (sizes may change mid-file) and shown only
// during its frames. The scenes are concatenated, overlays and captions are
// drawn, and the result is split to every encoding the profiles need, so
// several profiles share the decoding and compositing.
//
// How a plan becomes audio. Every audio lane is one continuous stream: its
// pieces (the plan's sources, merged where they continue each other) are
// trimmed in file time, placed by their timestamps (aresample async fills
// packet-loss holes with silence; a stretch whose packets follow each other
// goes without it, its samples the same: sourceaudio.go), resampled by
// 1/Speed when the sender's clock is off, given their gain and cut to an
// exact number of samples (padded to it only where the file holds fewer);
// silence fills the time between them. The lanes are mixed without
// normalization into one float WAV of exactly the video's length, whose
// loudness (EBU R128, ebur128) is measured in the same pass; it is then
// encoded (AAC, Opus) with the gain that reaches the target loudness, through
// a latency-compensated limiter when the peaks need it, while the video jobs
// still run. The muxes only copy: the concatenated job outputs (exact
// durations, so the frames stay on the grid), the encoded audio, captions as
// a subtitle track if asked, moov first.
//
// Stems and exports. Export (export.go) makes what an editor opens: per
// participant a WAV and an MP4 that start at session time 0 and last the
// whole session, and the timelines that place them (written by the
// interchange package). Each participant's stems are drawn from a plan of
// their own — timeline.NewPlan with a single layout of that participant,
// everyone else excluded, no cuts — compiled by Compile like the composite's,
// so the same sync model, piece placement and audio chain place them
// (stems.go explains why the composite's plan cannot serve). The placed
// audio's side signal (L − R) is measured in the same pass: silent, the
// participant sent mono. The files are checked with ffprobe (exact sample and
// frame counts) and the export is renamed into place only when all of it
// succeeded.
package render
