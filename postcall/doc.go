// Package postcall runs what happens to a recording after its call: upload the raw tracks, the journal
// and the manifest, render the composites, upload them, and notify a webhook. It also uploads closed
// segments while the call goes on, so that the recorder's disk holds only open segments and a bounded
// backlog.
//
// # Jobs and where they run
//
// Jobs travel through NATS JetStream, one stream for one machine or many. The stream Stream
// ("TAPEDECK_JOBS", subjects "tapedeck.jobs.>") is a work queue: a message is delivered to one
// consumer, stays in the stream until that consumer acknowledges it, and is delivered again when it
// is not acknowledged within AckWait (a crashed process), up to MaxDeliver times. A job has two
// stages, each a message:
//
//	tapedeck.jobs.upload.{node}   stage 1, on the recording node that holds the session folder
//	                              (durable consumer "upload-{node}"): finalize (the manifest exists),
//	                              upload every raw track, the journal, then the manifest, and publish
//	                              stage 2.
//	tapedeck.jobs.render          stage 2, on any process that renders (durable consumer "render",
//	                              shared by `serve` and every `worker`): fetch the session from
//	                              storage, render each RenderSpec, upload the outputs under
//	                              renders/{name}/, POST the webhook.
//
// Stage 2 reads its inputs from storage, never from a recorder's disk, so that a worker on another
// machine and the recorder itself run the same code. A handler sends msg.InProgress every AckWait/3
// while it works, so a long render is not redelivered; when its process dies the heartbeats stop and
// the job goes to another consumer after AckWait. A failed attempt is NAKed with a growing delay; the
// last allowed attempt terminates the message and marks the job failed.
//
// # Job state and idempotency
//
// Delivery is at least once, so every step is idempotent. Each session has one state document
// (State) in the JetStream key-value bucket "tapedeck_jobs" under "{room}/{session}", changed only by
// compare-and-set: uploaded, each render's stored files (key, size, SHA-256), webhook delivered, done
// or failed (kept 30 days after its last change). A step that the state records as done is not run
// again. An upload is skipped when the object under the same key already has the file's size and
// SHA-256 (storage.Client.Stat), so a redelivered or restarted job does not upload again what was
// confirmed before. The webhook may be sent twice if a process dies between its 2xx answer and the
// state's update: Event.ID (also the X-Tapedeck-Delivery header) lets a receiver drop the repeat.
//
// A recording node enqueues a session when capture reports it ended, and at start (EnqueueUnfinished)
// every session folder with a manifest whose ledger does not record the manifest stored, which covers
// a process killed between the two. Publishes carry a message ID, so JetStream drops a repeat within
// ten minutes.
//
// # Local files
//
// A local file is deleted only after its upload is confirmed (storage.UploadFile checks the stored
// object's size and SHA-256), and every confirmed upload is appended to the session folder's ledger,
// uploaded.jsonl (LedgerName): the path, the store, the key, the size and the SHA-256. A closed
// segment uploaded during the call is deleted only once the session's journal on disk holds its
// segment_close record: crash recovery (capture.Recover) needs the files of unclosed segments only,
// so the manifest's relative paths stay valid — a path names the local file while it exists and the
// object SessionPrefix(room, session)+path in storage always.
//
// Stage 1 (Uploader.StoreSession) keeps a session complete in at least one place at every instant:
// it uploads every remaining track file keeping it on disk, then the journal, then the manifest, and
// only then deletes the closed segments' files. Until the manifest is stored, the session folder
// holds the manifest and every track file, or its ledger records the file confirmed in storage
// (the segments uploaded during the call); from then on, storage holds the whole session. A process
// stopped anywhere in between leaves both, and the next start finishes the job. After stage 1 the
// session folder keeps journal.jsonl, manifest.json and the ledger, plus the files of segments a
// crash left unclosed (recovery reads those); every track is in storage.
//
// Commands that read a session folder use ResolveSession: the files on disk, and each deleted one
// fetched from the store its ledger names (or one the user names), checked against the SHA-256 the
// ledger recorded; a file that cannot be fetched is an error naming the store, the key and the flag
// that fetches it. LocateSession says where every file is without reading any store.
//
// # Sessions recorded in parts (a cluster)
//
// When the nodes of a cluster record a session in turn (its node died, and the
// participants reconnected to another), each node's folder holds its part: a
// manifest with Part and Node set, track names of its own (so every track file
// has a key of its own under the session's prefix). Stage 1 on each node stores
// its part like any session, except that its journal and manifest go under
// parts/{part}/ (PartPrefix), and then queues a merge job (MergeSubject,
// consumed by the cluster's nodes) instead of the render. During the call a
// part's node also uploads, after each closed segment, a snapshot of its
// journal (parts/{part}/journal-snapshot.jsonl).
//
// The merge waits while a node records the session, while it may still be
// continued (its last node died or handed it over less than the cluster's
// resume window ago), and for every part not stored whose node is alive; a
// part whose node is gone is waited for Config.PartWait (since the merge was
// queued). Then, under a lock per session (MergeLocksBucket), it merges what
// there is (timeline.MergeParts): a stored part whole ("complete"); a part whose
// node is gone from its journal snapshot and the segments the node uploaded
// during the call ("partial": the rest named missing); a part with nothing in
// storage ("missing"). It stores the session's manifest (the only file written
// at the session's root: the tracks are the parts'), and queues the render.
// When a dead node comes back, recovers its part and stores it, the merge runs
// again: the parts' statuses differ from those of the stored manifest, so the
// manifest is replaced, the job's renders and webhook are reset, and the session
// is rendered and notified again, once. The webhook's event lists the parts and
// their journals instead of one journal.
//
// # Rendering
//
// A Renderer turns a session folder and a RenderSpec into output files. RenderSpec.Nice tells it the
// niceness to start FFmpeg with (nice -n), and Config.RenderConcurrency bounds the renders a process
// runs at once, so that renders on a recording machine do not take CPU from capture. Without a
// Renderer the render step is skipped with a logged reason, and the webhook says so.
package postcall
