package capture

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestParseSDPFrag(t *testing.T) {
	const cand = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"
	tests := []struct {
		name, body string
		wantErr    string
		ufrag      string
		cands      int
		end        bool
	}{
		// As RFC 8840 writes them: credentials, then the media section.
		{"trickle", "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=" + cand + "\r\na=end-of-candidates\r\n", "", "EsAw", 1, true},
		// A restart without candidates yet (whip-whep's restart()).
		{"restart", "a=ice-ufrag:new\r\na=ice-pwd:newpassword0123456789012\r\n", "", "new", 0, false},
		// sdp-transform's output with v= and s= left in, LF only.
		{"full lines", "v=0\ns= \na=ice-ufrag:u\na=ice-pwd:p\nm=audio 9 RTP/AVP 0\na=mid:0\na=" + cand + "\n", "", "u", 1, false},
		{"candidate before media", "a=ice-ufrag:u\r\na=ice-pwd:p\r\na=" + cand + "\r\n", "before any m= line", "", 0, false},
		{"bad candidate", "a=ice-ufrag:u\r\na=ice-pwd:p\r\nm=audio 9 RTP/AVP 0\r\na=candidate:nonsense\r\n", "candidate", "", 0, false},
		{"bad port", "a=ice-ufrag:u\r\na=ice-pwd:p\r\nm=audio 9 RTP/AVP 0\r\na=candidate:1 1 udp 2 127.0.0.1 x typ host\r\n", "port", "", 0, false},
		// @eyevinn/whip-web-client 1.1.7: component 0, IPv6 in brackets.
		{"draft client", "a=ice-ufrag:u\r\na=ice-pwd:p\r\nm=audio 9 RTP/AVP 0\r\na=mid:1\r\na=candidate:668913107 0 udp 2122134271 [fd00::2] 49653 typ host\r\n", "", "u", 1, false},
		// Well formed but unusable here (a transport ICE does not have):
		// dropped, not an error.
		{"unusable address", "a=ice-ufrag:u\r\na=ice-pwd:p\r\nm=audio 9 RTP/AVP 0\r\na=candidate:1 1 sctp 2 127.0.0.1 9 typ host\r\na=" + cand + "\r\n", "", "u", 1, false},
		{"not sdp", "hello world\r\n", "not an SDP line", "", 0, false},
		{"foreign line", "a=ice-ufrag:u\r\na=ice-pwd:p\r\nk=clear:x\r\n", "no place", "", 0, false},
		{"ufrag alone", "a=ice-ufrag:u\r\nm=audio 9 RTP/AVP 0\r\n", "go together", "", 0, false},
		{"empty", "", "neither", "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseSDPFrag([]byte(tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := f.ufrag, tc.ufrag; got != want {
				t.Errorf("ufrag %q, want %q", got, want)
			}
			n, end := 0, false
			for _, m := range f.media {
				n += len(m.candidates)
				end = end || m.end
			}
			if got, want := n, tc.cands; got != want {
				t.Errorf("candidates %d, want %d", got, want)
			}
			if got, want := end, tc.end; got != want {
				t.Errorf("end-of-candidates %v, want %v", got, want)
			}
		})
	}
}

func TestETagMatches(t *testing.T) {
	cur := `"abc.1"`
	for field, want := range map[string]bool{
		`"abc.1"`: true, `*`: true, `"abc.0", "abc.1"`: true,
		`"abc.0"`: false, `W/"abc.1"`: false, ``: false, `abc.1`: false,
	} {
		if got := etagMatches(field, cur); got != want {
			t.Errorf("etagMatches(%q, %q) = %v, want %v", field, cur, got, want)
		}
	}
}

func TestICEServerCredentials(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := ICEConfig{
		Servers: []ICEServer{
			{URL: "stun:stun.example.net:3478"},
			{URL: "turn:turn.example.net:3478?transport=tcp"},
			{URL: "turns:turn.example.net:5349", Username: "static", Credential: "pw"},
		},
		TURNSecret: "s3cret", TURNTTL: time.Hour,
	}
	got := cfg.iceServers("alice", now)
	if len(got) != 3 {
		t.Fatalf("%d servers, want 3", len(got))
	}
	if got[0].Username != "" {
		t.Errorf("STUN server got credentials %q", got[0].Username)
	}
	if want := "1800003600:alice"; got[1].Username != want {
		t.Errorf("REST username %q, want %q (expiry:user)", got[1].Username, want)
	}
	mac := hmac.New(sha1.New, []byte("s3cret"))
	mac.Write([]byte(got[1].Username))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); got[1].Credential != want {
		t.Errorf("REST credential %v, want %s", got[1].Credential, want)
	}
	if got[2].Username != "static" || got[2].Credential != "pw" {
		t.Errorf("static credentials %q/%v, want static/pw", got[2].Username, got[2].Credential)
	}
	links := linkHeaders(got)
	if want := `<stun:stun.example.net:3478>; rel="ice-server"`; links[0] != want {
		t.Errorf("link %q, want %q", links[0], want)
	}
	if !strings.HasPrefix(links[1], `<turn:turn.example.net:3478?transport=tcp>; rel="ice-server"; username="1800003600:alice"; credential="`) ||
		!strings.HasSuffix(links[1], `"; credential-type="password"`) {
		t.Errorf("TURN link %q", links[1])
	}
	for _, bad := range []ICEServer{{URL: "http://x"}, {URL: "turn:"}, {URL: "stun:x", Username: "u"}, {URL: `turn:x`, Credential: `a"b`}} {
		if err := CheckICEServer(bad); err == nil {
			t.Errorf("CheckICEServer(%+v) accepted", bad)
		}
	}
	for _, ok := range cfg.Servers {
		if err := CheckICEServer(ok); err != nil {
			t.Errorf("CheckICEServer(%+v): %v", ok, err)
		}
	}
}
