package cluster

import (
	"context"
	"time"
)

// Orphans: a node that dies recording a room leaves a session nobody ends
// when no publisher comes back to continue it. Every node watches the
// registry: when a node disappears from it, the unfinished sessions of the
// rooms it announced are watched until Resume has passed since their lease
// expired; one that no node continued (its record neither ended, nor
// recorded, nor waiting for its next part) is given to Config.OnOrphan, on
// every node that saw its node go.

// orphan is a session whose node left the registry while recording it.
type orphan struct {
	room, session, node string
	due                 time.Time // when to look: Resume after the lease expired, at the latest
}

// watchGone starts watching the unfinished sessions of the nodes of prev that
// are not in now. Called by announce, with c.mu not held.
func (c *Cluster) watchGone(ctx context.Context, prev, now []NodeInfo) {
	if c.cfg.OnOrphan == nil {
		return
	}
	present := map[string]bool{}
	for _, n := range now {
		present[n.Name] = true
	}
	for _, n := range prev {
		if present[n.Name] || n.Name == c.cfg.Node {
			continue
		}
		for _, room := range n.Rooms {
			var rr RoomRecord
			_, found, err := getJSON(ctx, c.b.Rooms, escapeKey(room), &rr)
			if err != nil {
				c.log.Warn("reading the room of a node that left failed", "gone", n.Name, "room", room, "err", err)
				continue
			}
			if !found || rr.Ended || rr.Session == "" {
				continue
			}
			c.log.Info("a node left the registry while recording; watching its session", "gone", n.Name, "room", room, "session", rr.Session)
			c.mu.Lock()
			if c.orphans == nil {
				c.orphans = map[string]orphan{}
			}
			c.orphans[sessionKey(room, rr.Session)] = orphan{room: room, session: rr.Session, node: n.Name,
				due: time.Now().Add(c.ttl + c.cfg.Resume)}
			c.mu.Unlock()
		}
	}
}

// checkOrphans looks at the watched sessions that are due: one continued or
// ended is dropped, one still waiting for its next part is kept, and one that
// nothing will end is handed to OnOrphan.
func (c *Cluster) checkOrphans(ctx context.Context) {
	c.mu.Lock()
	var due []orphan
	for _, o := range c.orphans {
		if !time.Now().Before(o.due) {
			due = append(due, o)
		}
	}
	c.mu.Unlock()
	for _, o := range due {
		sp, err := c.b.Parts(ctx, o.room, o.session)
		if err != nil {
			c.log.Warn("reading the parts of a watched session failed; trying again", "room", o.room, "session", o.session, "err", err)
			continue
		}
		if sp.Waiting {
			continue
		}
		orphaned := sp.Recording == "" && !sp.Ended
		c.mu.Lock()
		delete(c.orphans, sessionKey(o.room, o.session))
		if orphaned {
			c.stats.Orphans++
		}
		c.mu.Unlock()
		if !orphaned {
			continue
		}
		c.log.Warn("a session's node died and no node continued it: finalizing it from what was stored",
			"room", o.room, "session", o.session, "gone", o.node)
		c.cfg.OnOrphan(ctx, o.room, o.session)
	}
}
