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
// and the NACK generator. Sender reports are made by the publisher from its
// capture timeline (RTP = first + (now − Start)·rate, as a browser derives
// them from the capture time of its last frame), so a busy machine that
// sends late does not bias them. Audio packets carry
// the RFC 6464 audio level (about 10 for the tone, 127 for silence) and all
// packets abs-send-time, when the receiver negotiates them. ICE uses UDP4
// with loopback candidates and no mDNS; for a loopback endpoint only
// 127.0.0.1 is offered.
//
// # Redirects and reconnection
//
// Every WHIP request (POST, PATCH, DELETE) follows 307 and 308 redirects
// itself, sending the body and the bearer token again to each Location (Go's
// client would drop Authorization on a redirect to another host), as OBS and
// GStreamer's whipclientsink do; the session's Location resolves against the
// URL that answered. With Config.Reconnect, a failed POST or a connection that
// fails (or stays disconnected for 2 s) is followed by a new WHIP session on
// the next of Config.Endpoints, the media going on from where its timeline is:
// Result.Attempts lists the sessions tried.
package publisher
