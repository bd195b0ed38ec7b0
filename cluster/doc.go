// Package cluster spreads rooms over the recorders (nodes) that share one NATS
// JetStream server: which node records each room, the nodes' load, and the
// parts of a session that several nodes recorded in turn. It imports nats.go,
// never pion: package capture sees it only through capture.Rooms, which cmd
// wires in, and a recorder running alone needs none of it.
//
// # Key-value buckets
//
//	tapedeck_nodes     {node}            NodeInfo: URL, load, limits, rooms, draining. Rewritten
//	                                     every LeaseTTL/3; TTL LeaseTTL (a dead node disappears).
//	tapedeck_leases    {room}            Lease: the node recording the room, its URL and session.
//	                                     TTL LeaseTTL; renewed every LeaseTTL/3.
//	tapedeck_rooms     {room}            RoomRecord: the room's session and whether it ended.
//	                                     Rewritten with every renewal; TTL LeaseTTL + Resume.
//	tapedeck_sessions  {room}/{session}  SessionRecord: the session's parts (node, URL, started,
//	                                     released); TTL 30 days.
//
// Keys are names with every character but letters, digits, '_' and '-' written
// as "=XX". Buckets keep one revision per key; a key's TTL is the bucket's
// (MaxAge), counted on the NATS server's clock from the key's last write, so
// that lease expiry never compares two machines' clocks. The first node creates
// the buckets; a node started with another --lease-ttl uses theirs and warns.
//
// # Leases
//
// A publish of a room nobody records creates the room's lease with
// create-if-absent (KV Create: the stream's expected-last-sequence 0): of two
// nodes claiming at the same instant exactly one succeeds, and the other reads
// the winner's lease and sends the publish there. The winner then records its
// part in the session's record (compare-and-set), writes the room's record and
// renews the lease every LeaseTTL/3 by compare-and-set on its revision (KV
// Update), rewriting the room's record after each renewal.
//
// A renewal that finds the lease gone (it expired while NATS was unreachable)
// creates it again; one that finds another node's lease has lost the room: the
// node ends its publishes of the room (their clients reconnect and are sent to
// the new node) and its part, handed over. A node whose last successful renewal
// is more than LeaseTTL old takes no new publish for the room (503 with
// Retry-After) but keeps recording the ones it has: nothing recorded is lost
// while NATS is unreachable, and publishes the node cannot confirm go elsewhere.
//
// A lease not renewed for two renewal periods (its node is likely dead) is not
// redirected to: the publish gets a 503 with Retry-After, and the lease expires
// within LeaseTTL of the node's last renewal. Each node estimates the NATS
// server's clock from its own announcements for this check.
//
// # Failover
//
// When a room's node dies its lease expires, and the room's record says its
// session did not end: the next claim of the room, on any node, within Resume
// continues the same session as its next part (the session's record lists the
// parts in order). The same happens when a node shuts down with publishes
// still running (a handover). A session that ended (its last publisher left)
// marks the room's record ended first, then deletes its lease: the next claim
// starts a new session. A claim granted for a publish that is then refused is
// given back and its part removed.
//
// A session whose node died and that no claim continues within Resume would
// never end: every node watches the registry, and when a node leaves it the
// unfinished sessions of the rooms it announced are watched; once their room's
// record expired (Resume after the lease) with no node recording them, they
// are handed to Config.OnOrphan (the post-call pipeline queues their merge).
//
// # Placement
//
// A node over its limits (CPU, free disk, publishes; Limits) sends a publish of
// a room nobody records to the node under its own limits with the lowest load
// (the highest of its CPU fraction and its share of its publish limit), without
// taking a lease. The publish it sends there is marked as placed, and is
// recorded there whatever that node's load by then, so that a publish is placed
// once. When no node is under its limits, the room stays where the publish
// arrived.
package cluster
