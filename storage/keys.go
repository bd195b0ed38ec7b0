package storage

// Key layout of one recorded session; see the package documentation. The helpers only join strings:
// room, session and render must be single key segments (no "/"), and a name may contain "/" (a track
// named "alice/video-t2-000.webm"). Put and the other methods reject malformed results with
// ErrInvalidKey, so a bad room or session name cannot escape the layout silently.

// SessionPrefix is the prefix of every object of a session, with a trailing "/": "{room}/{session}/".
func SessionPrefix(room, session string) string {
	return room + "/" + session + "/"
}

// ManifestKey is "{room}/{session}/manifest.json".
func ManifestKey(room, session string) string {
	return SessionPrefix(room, session) + "manifest.json"
}

// JournalKey is "{room}/{session}/journal.jsonl".
func JournalKey(room, session string) string {
	return SessionPrefix(room, session) + "journal.jsonl"
}

// TracksPrefix is "{room}/{session}/tracks/".
func TracksPrefix(room, session string) string {
	return SessionPrefix(room, session) + "tracks/"
}

// TrackKey is "{room}/{session}/tracks/{name}", name being the track file's path relative to the
// session's tracks folder ("alice/audio-t1-000.webm").
func TrackKey(room, session, name string) string {
	return TracksPrefix(room, session) + name
}

// RendersPrefix is "{room}/{session}/renders/{render}/": every file of one render.
func RendersPrefix(room, session, render string) string {
	return SessionPrefix(room, session) + "renders/" + render + "/"
}

// RenderKey is "{room}/{session}/renders/{render}/{name}".
func RenderKey(room, session, render, name string) string {
	return RendersPrefix(room, session, render) + name
}
