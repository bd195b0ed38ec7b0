// Package storage keeps a recording's files (tracks, journal, manifest, renders) in a local folder or an
// S3 bucket behind one small interface, Client. It knows nothing about media: objects are bytes under
// slash-separated keys.
//
// # Opening
//
//	c, err := storage.Open(ctx, "s3://recordings/prod", storage.Options{Logger: log})
//
// accepts a plain path or "file:///abs/dir" (a local folder, the default) and "s3://bucket[/prefix]".
// For S3-compatible servers set Options.Endpoint, Region and PathStyle. S3 credentials come from the AWS
// SDK's standard chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared files,
// an instance or task role); they are never part of the URL, of String() or of an error. Open checks
// that credentials exist and that the bucket answers, and says which of the two is wrong.
//
// # Key layout
//
// One recorded session lives under "{room}/{session}/", the same tree as the recorder's data folder
// (see docs/manifest.md):
//
//	{room}/{session}/manifest.json                  ManifestKey(room, session)
//	{room}/{session}/journal.jsonl                  JournalKey(room, session)
//	{room}/{session}/tracks/{participant}/{file}    TrackKey(room, session, "alice/audio-t1-000.webm")
//	{room}/{session}/renders/{render}/{file}        RenderKey(room, session, render, "grid.mp4")
//
// SessionPrefix, TracksPrefix and RendersPrefix give the prefixes to List. Session IDs sort by time,
// so List(ctx, room+"/") returns a room's objects session by session, oldest first. Convention for
// uploaders: put the manifest last, so that its presence says the session's tracks are all stored.
//
// Keys are validated (ValidateKey): relative, "/"-separated, no empty, "." or ".." segments, no
// backslashes or control characters; errors wrap ErrInvalidKey. A missing object is ErrNotFound
// (wrapped) from Get, Stat and Link of both implementations; deleting one is not an error.
//
// # Integrity
//
// Every Put computes the SHA-256 of what it stores. The local folder writes a temporary file, fsyncs,
// reads it back, and renames it into place; S3 sends x-amz-checksum-sha256 with the PUT or every part
// and checks the server's answer (see S3 for multipart uploads and their size limits). UploadFile puts a
// local file, checks the stored object's size and SHA-256 against the file, and only then may delete the
// file.
//
// # Tests
//
// storagetest.RunClientSuite is the behaviour both implementations pass; the S3 tests run it against a
// real versitygw server that storagetest.StartVersityGW starts on 127.0.0.1 (binary:
// $TAPEDECK_VERSITYGW, else .bin/versitygw at the repository root, else PATH; `make deps` installs
// it). A missing binary fails the tests.
package storage
