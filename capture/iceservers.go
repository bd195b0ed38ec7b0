package capture

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
)

// ICEServer is a STUN or TURN server: a stun:, turn: or turns: URL
// (RFC 7064, RFC 7065; "?transport=tcp" selects TURN over TCP) and, for
// TURN, static credentials (empty: the TURN REST credentials of
// ICEConfig.TURNSecret, if any).
type ICEServer struct {
	URL        string
	Username   string
	Credential string
}

// DefaultTURNTTL is how long TURN REST credentials stay valid by default:
// long enough for a long call, whose allocation is refreshed with them.
const DefaultTURNTTL = 24 * time.Hour

// CheckICEServer returns an error saying what is wrong with a server URL.
func CheckICEServer(s ICEServer) error {
	u, err := stun.ParseURI(s.URL)
	if err != nil {
		return fmt.Errorf("ICE server %q: %w (want stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT])", s.URL, err)
	}
	if u.Scheme == stun.SchemeTypeSTUN || u.Scheme == stun.SchemeTypeSTUNS {
		if s.Username != "" || s.Credential != "" {
			return fmt.Errorf("ICE server %q: a STUN server takes no credentials", s.URL)
		}
	}
	if strings.ContainsAny(s.URL+s.Username+s.Credential, "\"<>,;\r\n") {
		return fmt.Errorf("ICE server %q: URLs and credentials may not hold quotes, '<', '>', ',', ';' or line breaks", s.URL)
	}
	return nil
}

// iceServers returns the ICE servers of cfg with the credentials a client
// (or the recorder itself) uses from now: static ones, or TURN REST ones for
// user, valid until now + TURNTTL.
func (cfg ICEConfig) iceServers(user string, now time.Time) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, s := range cfg.Servers {
		w := webrtc.ICEServer{URLs: []string{s.URL}}
		turn := strings.HasPrefix(s.URL, "turn:") || strings.HasPrefix(s.URL, "turns:")
		switch {
		case s.Username != "" || s.Credential != "":
			w.Username, w.Credential = s.Username, s.Credential
		case turn && cfg.TURNSecret != "":
			w.Username, w.Credential = turnREST(cfg.TURNSecret, user, now.Add(cfg.turnTTL()))
		}
		if w.Username != "" {
			w.CredentialType = webrtc.ICECredentialTypePassword
		}
		out = append(out, w)
	}
	return out
}

func (cfg ICEConfig) turnTTL() time.Duration {
	if cfg.TURNTTL > 0 {
		return cfg.TURNTTL
	}
	return DefaultTURNTTL
}

// turnREST computes time-limited TURN credentials from a shared secret:
// the username is "EXPIRY:USER" (Unix seconds), the password the base64 of
// HMAC-SHA1(secret, username). coturn's use-auth-secret checks exactly this.
func turnREST(secret, user string, expires time.Time) (username, credential string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + user
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// linkHeaders are the Link header values that give servers to a WHIP
// client (RFC 9725, 4.6), e.g.
//
//	<turn:turn.example.net?transport=udp>; rel="ice-server"; username="u"; credential="p"; credential-type="password"
func linkHeaders(servers []webrtc.ICEServer) []string {
	var out []string
	for _, s := range servers {
		for _, u := range s.URLs {
			v := "<" + u + `>; rel="ice-server"`
			if s.Username != "" {
				v += fmt.Sprintf(`; username="%s"; credential="%v"; credential-type="password"`, s.Username, s.Credential)
			}
			out = append(out, v)
		}
	}
	return out
}
