package publisher

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config describes one participant.
type Config struct {
	// Endpoint is the WHIP URL, e.g. http://127.0.0.1:8080/whip/room1. The
	// participant name is added as ?participant=NAME.
	Endpoint    string
	Participant string
	// Token is the bearer token sent with the POST and the DELETE; optional.
	Token string
	// Duration of the publish; 0 publishes until ctx is done.
	Duration time.Duration
	// Video is "vp8", "h264", or "" for audio only. (The zero Config has no
	// video: callers that want the usual default pass "vp8".)
	Video string
	// Audio adds an Opus track.
	Audio bool
	// Width, Height and FPS of the video; 640x360 at 30 when zero.
	Width, Height, FPS int
	// Bitrate of the video in bits/s; 1_000_000 when zero.
	Bitrate int
	// KeyframeEvery is the time between the video's keyframes; 1 s when
	// zero. A browser makes one every 3000 frames unless asked (this
	// publisher never answers a PLI: its media is encoded beforehand).
	KeyframeEvery time.Duration
	// MarkPeriod is the time between two sync marks; 1 s when zero. It must
	// be a whole number of video frames and of 20 ms audio packets.
	MarkPeriod time.Duration
	// MarkEpoch, when set, puts the start (and so every mark) on an instant
	// MarkEpoch + k·MarkPeriod: once connected, the publisher waits for the
	// next such instant. Publishers given epochs a fraction of a period
	// apart keep their marks at those phases of one another however long
	// their connections take.
	MarkEpoch time.Time
	// Loss is the fraction of outgoing RTP packets dropped on purpose,
	// between the NACK responder and the network (so retransmissions can
	// recover some). The drops of original packets are reproducible for a
	// given Seed.
	Loss float64
	// ClockOffset is added to the sender's wall clock in its RTCP sender
	// reports (and abs-send-time), like a computer whose clock is wrong.
	ClockOffset time.Duration
	// Seed makes the loss pattern reproducible.
	Seed int64
	// MediaDir caches the generated media; os.TempDir()/tapedeck-media when
	// empty.
	MediaDir string
	// FFmpeg is the path of the ffmpeg binary; "ffmpeg" when empty.
	FFmpeg string
	// BeforePost, if set, is called once the offer is ready, just before it
	// is POSTed; tests use it to send several POSTs at the same instant.
	BeforePost func()

	// How the publish does ICE. By default every candidate is gathered
	// before the offer is POSTed.
	//
	// Trickle POSTs the offer at once and sends the candidates as they are
	// gathered with PATCH (RFC 9725, 4.3.2), If-Match the session's ETag.
	Trickle bool
	// NoCandidates POSTs an offer without candidates and never PATCHes, as
	// OBS does: the connection comes up from the publisher's connectivity
	// checks alone (peer-reflexive candidates on the recorder's side).
	NoCandidates bool
	// TCPOnly uses ICE over TCP only, as a client whose UDP is blocked.
	TCPOnly bool
	// RestartAfter, if set, restarts ICE that long after sending starts:
	// new credentials and candidates with PATCH, If-Match "*" (RFC 9725,
	// 4.3.3); media goes on once the new session is checked.
	RestartAfter time.Duration

	// Endpoints are more WHIP URLs of the same room (other recorders of a
	// cluster): with Reconnect, each new try goes to the next URL in turn,
	// after Endpoint.
	Endpoints []string
	// Reconnect publishes again when the POST fails (a network error, a 5xx)
	// or the connection fails while sending, as a client whose recorder died
	// does: a new WHIP session (a new peer connection, new SSRCs) on the next
	// endpoint, the media going on from where its timeline is now, so the
	// marks stay at Start + k·MarkPeriod. ICE's disconnected state (no answer
	// for 2 s) counts as a failure. It gives up after ReconnectFor (default
	// 60 s) without a connection.
	Reconnect    bool
	ReconnectFor time.Duration
}

const (
	// Video codec names accepted in Config.Video.
	VP8  = "vp8"
	H264 = "h264"

	defaultWidth      = 640
	defaultHeight     = 360
	defaultFPS        = 30
	defaultBitrate    = 1_000_000
	defaultMarkPeriod = time.Second
	// defaultReconnectFor is how long Reconnect tries without a connection.
	defaultReconnectFor = 60 * time.Second

	// audioPacket is the duration of one Opus packet.
	audioPacket = 20 * time.Millisecond
	// maxClip bounds the length of the generated media; longer publishes
	// loop it.
	maxClip = 60 * time.Second
)

// withDefaults returns cfg with the zero fields set to their defaults, or an
// error saying what is wrong with its media settings.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Width == 0 && cfg.Height == 0 {
		cfg.Width, cfg.Height = defaultWidth, defaultHeight
	}
	if cfg.FPS == 0 {
		cfg.FPS = defaultFPS
	}
	if cfg.Bitrate == 0 {
		cfg.Bitrate = defaultBitrate
	}
	if cfg.MarkPeriod == 0 {
		cfg.MarkPeriod = defaultMarkPeriod
	}
	if cfg.KeyframeEvery == 0 {
		cfg.KeyframeEvery = time.Second
	}
	if cfg.MediaDir == "" {
		cfg.MediaDir = filepath.Join(os.TempDir(), "tapedeck-media")
	}
	if cfg.FFmpeg == "" {
		cfg.FFmpeg = "ffmpeg"
	}
	cfg.Video = strings.ToLower(strings.TrimSpace(cfg.Video))

	var errs []error
	if cfg.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration %v is negative", cfg.Duration))
	}
	switch cfg.Video {
	case "", VP8, H264:
	default:
		errs = append(errs, fmt.Errorf("video codec %q: want %q, %q or \"\" (audio only)", cfg.Video, VP8, H264))
	}
	if cfg.Video == "" && !cfg.Audio {
		errs = append(errs, errors.New("nothing to publish: no video codec and no audio"))
	}
	if cfg.Video != "" {
		if cfg.Width < 16 || cfg.Height < 16 || cfg.Width > 4096 || cfg.Height > 4096 || cfg.Width%2 != 0 || cfg.Height%2 != 0 {
			errs = append(errs, fmt.Errorf("video size %dx%d: want even numbers between 16 and 4096", cfg.Width, cfg.Height))
		}
		if cfg.FPS < 1 || cfg.FPS > 120 {
			errs = append(errs, fmt.Errorf("fps %d: want 1 to 120", cfg.FPS))
		}
		if cfg.FPS > 0 && (cfg.KeyframeEvery <= 0 || (cfg.KeyframeEvery*time.Duration(cfg.FPS))%time.Second != 0) {
			errs = append(errs, fmt.Errorf("keyframe interval %v: want a positive whole number of frames at %d fps", cfg.KeyframeEvery, cfg.FPS))
		}
		if cfg.Bitrate < 10_000 {
			errs = append(errs, fmt.Errorf("video bitrate %d b/s is too low (want at least 10000)", cfg.Bitrate))
		}
	}
	switch {
	case cfg.MarkPeriod < 0:
		errs = append(errs, fmt.Errorf("mark period %v is negative", cfg.MarkPeriod))
	case cfg.MarkPeriod%audioPacket != 0:
		errs = append(errs, fmt.Errorf("mark period %v is not a multiple of the 20 ms audio packet", cfg.MarkPeriod))
	case cfg.Video != "" && cfg.FPS > 0 && (cfg.MarkPeriod*time.Duration(cfg.FPS))%time.Second != 0:
		errs = append(errs, fmt.Errorf("mark period %v is not a whole number of frames at %d fps", cfg.MarkPeriod, cfg.FPS))
	case cfg.MarkPeriod > maxClip:
		errs = append(errs, fmt.Errorf("mark period %v is longer than %v", cfg.MarkPeriod, maxClip))
	}
	if cfg.Reconnect && cfg.ReconnectFor <= 0 {
		cfg.ReconnectFor = defaultReconnectFor
	}
	if cfg.Loss < 0 || cfg.Loss >= 1 {
		errs = append(errs, fmt.Errorf("loss %v: want a fraction in [0, 1)", cfg.Loss))
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, fmt.Errorf("publisher config: %w", err)
	}
	return cfg, nil
}

// endpointURLs checks the session settings and returns Endpoint and then
// Endpoints, each with ?participant=NAME added.
func (cfg Config) endpointURLs() ([]*url.URL, error) {
	var errs []error
	var out []*url.URL
	for _, e := range append([]string{cfg.Endpoint}, cfg.Endpoints...) {
		u, err := url.Parse(e)
		switch {
		case e == "":
			errs = append(errs, errors.New("endpoint is empty"))
		case err != nil:
			errs = append(errs, fmt.Errorf("endpoint: %w", err))
		case u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, fmt.Errorf("endpoint %q: scheme must be http or https", e))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("endpoint %q has no host", e))
		default:
			q := u.Query()
			q.Set("participant", cfg.Participant)
			u.RawQuery = q.Encode()
			out = append(out, u)
		}
	}
	if cfg.Participant == "" {
		errs = append(errs, errors.New("participant is empty"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("publisher config: %w", err)
	}
	return out, nil
}

// clipLength is the length of the generated media: Duration (or maxClip for
// an endless publish, and at most maxClip) rounded up to whole mark periods,
// so that looping keeps the marks at k*MarkPeriod.
func (cfg Config) clipLength() time.Duration {
	d := cfg.Duration
	if d <= 0 || d > maxClip {
		d = maxClip
	}
	n := (d + cfg.MarkPeriod - 1) / cfg.MarkPeriod
	return n * cfg.MarkPeriod
}

// framesPerKeyframe is the number of video frames from one keyframe to the
// next.
func (cfg Config) framesPerKeyframe() int {
	return int(cfg.KeyframeEvery * time.Duration(cfg.FPS) / time.Second)
}

// framesPerMark is the number of video frames in one mark period.
func (cfg Config) framesPerMark() int {
	return int(cfg.MarkPeriod * time.Duration(cfg.FPS) / time.Second)
}

// packetsPerMark is the number of audio packets in one mark period.
func (cfg Config) packetsPerMark() int {
	return int(cfg.MarkPeriod / audioPacket)
}
