package console

import (
	"errors"
	"net/http"
	"time"
)

// jobsLimit bounds the jobs the Jobs page lists (newest change first).
const jobsLimit = 200

type jobsView struct {
	Filter  string
	Counts  map[string]int
	Jobs    []jobRow
	Retried string // room/session just retried
	Enabled bool
}

type jobRow struct {
	jobView
	Updated time.Time
	Renders []string
}

// jobFilters are the Jobs page's tabs: each lists the statuses it shows.
func jobFilters() map[string][]string {
	return map[string][]string{
		"":        nil,
		"queued":  {"queued", "retrying", "waiting"},
		"running": {"running"},
		"failed":  {"failed"},
		"done":    {"done"},
	}
}

func (c *Console) handleJobs(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("status")
	statuses, ok := jobFilters()[filter]
	if !ok {
		filter, statuses = "", nil
	}
	v := jobsView{Filter: filter, Counts: map[string]int{}, Enabled: c.cfg.Jobs != nil}
	if ref, ok := parseRef(r.URL.Query().Get("retried")); ok {
		v.Retried = ref.room + "/" + ref.session
	}
	if c.cfg.Jobs != nil {
		states, err := c.cfg.Jobs.States(r.Context(), jobsLimit)
		if err != nil {
			c.log.Error("console: job states", "err", err)
			c.fail(w, r, http.StatusBadGateway, "The job states could not be read: "+err.Error())
			return
		}
		for _, st := range states {
			jv := newJobView(st)
			group := jv.Status
			if group == "retrying" || group == "waiting" {
				group = "queued"
			}
			v.Counts[group]++
			v.Counts["all"]++
			if statuses != nil && !contains(statuses, jv.Status) {
				continue
			}
			row := jobRow{jobView: jv}
			for _, t := range []time.Time{st.Uploaded, st.Notified, st.Done, st.Failed} {
				if t.After(row.Updated) {
					row.Updated = t
				}
			}
			for _, s := range jv.Steps {
				if s.At.After(row.Updated) {
					row.Updated = s.At
				}
			}
			v.Jobs = append(v.Jobs, row)
		}
	}
	c.render(w, r, http.StatusOK, "jobs", "Jobs", v)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// handleRetry runs a failed job again.
func (c *Console) handleRetry(w http.ResponseWriter, r *http.Request) {
	room, session, err := roomSession(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad room or session name.")
		return
	}
	if c.cfg.Jobs == nil {
		c.fail(w, r, http.StatusNotFound, "This console has no post-call jobs.")
		return
	}
	ctx := r.Context()
	st, err := c.cfg.Jobs.State(ctx, room, session)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, "The job's state could not be read: "+err.Error())
		return
	}
	if st.Failed.IsZero() {
		c.fail(w, r, http.StatusConflict, "That job has not failed: there is nothing to retry.")
		return
	}
	if err := c.cfg.Jobs.Retry(ctx, room, session); err != nil {
		if errors.Is(err, ErrCannotRetry) {
			c.fail(w, r, http.StatusConflict, err.Error())
			return
		}
		c.log.Error("console: retry job", "room", room, "session", session, "err", err)
		c.fail(w, r, http.StatusBadGateway, "The job could not be retried: "+err.Error())
		return
	}
	c.log.Info("post-call job retried from the console", "room", room, "session", session, "client", clientAddr(r))
	if accessOf(ctx).bearer {
		writeJSON(w, http.StatusAccepted, map[string]string{"room": room, "session": session, "status": "queued"})
		return
	}
	http.Redirect(w, r, "/jobs?retried="+room+"/"+session, http.StatusSeeOther)
}
