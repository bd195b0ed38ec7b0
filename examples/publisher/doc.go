// Package publisher is a synthetic WHIP publisher: it behaves like one
// participant of a call. It generates a test picture and a test sound with
// sync marks, publishes them over WHIP (RFC 9725) with pion/webrtc, paces
// them in real time, and hangs up after a duration.
//
// # Media
//
// The media is generated once with ffmpeg into Config.MediaDir and cached
// there (see Media and PrepareMedia): VP8 in IVF or H.264 Annex B
// (constrained baseline, SPS/PPS before every IDR) with a keyframe every
// second, showing testsrc2 with the participant name and running time, and
// Opus in Ogg (48 kHz mono, 20 ms packets) that is silent but for a 40 ms
// 1 kHz tone. At every MarkPeriod boundary k the video frame at t = k*period
// is full white and the tone starts at exactly t = k*period.
//
// # Timing
//
// Both tracks are paced against one start instant (Result.Start): video
// frame i leaves at Start + i/FPS with RTP timestamp first + i*90000/FPS,
// audio packet k at Start + k*20ms with RTP timestamp first + k*960. The
// flash and the tone of a mark thus leave together, and the RTCP sender
// reports of both tracks (sent every second, with the sender's clock moved
// by ClockOffset) map them to the same NTP instant. Result.Marks tells when
// each mark was sent and with which RTP timestamps.
//
// # Network
//
// Interceptors, from the network outwards: a loss stage dropping
// Config.Loss of the packets (reproducibly for a Seed), the NACK responder
// (so the receiver's NACKs repair some of those, over RTX when negotiated),
// the NACK generator, and the RTCP report interceptors. Audio packets carry
// the RFC 6464 audio level (about 10 for the tone, 127 for silence) and all
// packets abs-send-time, when the receiver negotiates them. ICE uses UDP4
// with loopback candidates and no mDNS; for a loopback endpoint only
// 127.0.0.1 is offered.
package publisher
