package outbox

import (
	"os"
	"sync"
)

// renameOp is the change that renames from to to.
func renameOp(from, to string) func() error {
	return func() error { return os.Rename(from, to) }
}

// committer makes the renames of the spool durable in groups: concurrent
// Enqueue calls (and removals) hand it their rename, and one round renames
// every entry handed in so far and then syncs each directory they touched
// once, so that twenty devices sending at once share one directory sync
// instead of each waiting for its own. The round's syncs finish before any
// caller of the round returns, so nothing is reported stored (and no 250
// is sent) before the rename that published it is on disk. The files an
// entry holds are synced by their writer before the entry is handed in.
//
// A round runs in a goroutine started when a request finds none running;
// requests that arrive during a round wait for the next one, which starts
// as soon as the round ends. No goroutine is left once the requests stop.
type committer struct {
	// syncDir syncs a directory (atomicfile.SyncDir); tests replace it to
	// watch or stop the rounds.
	syncDir func(dir string) error

	mu      sync.Mutex
	pending []*commitReq
	running bool
}

// commitReq is one change of a directory (a rename, a link) and the
// directories whose sync makes it durable.
type commitReq struct {
	op   func() error // the change; nil for a request that only syncs
	dirs []string     // synced after the change; their failure is the request's
	also []string     // synced too, on a best-effort basis
	done chan error
}

// commit makes the change op (if not nil) in the next round and returns
// once the round has synced dirs and also: op's error, or the first failed
// sync of dirs. It must not be called while holding anything a round
// needs.
func (c *committer) commit(op func() error, dirs, also []string) error {
	r := &commitReq{op: op, dirs: dirs, also: also, done: make(chan error, 1)}
	c.mu.Lock()
	c.pending = append(c.pending, r)
	if !c.running {
		c.running = true
		go c.run()
	}
	c.mu.Unlock()
	return <-r.done
}

// run makes rounds until no request is pending.
func (c *committer) run() {
	for {
		c.mu.Lock()
		batch := c.pending
		c.pending = nil
		if len(batch) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.round(batch)
	}
}

// round makes the changes, then syncs each directory of the batch once (in
// parallel: a journalling file system commits them together), then answers
// every request.
func (c *committer) round(batch []*commitReq) {
	errs := make([]error, len(batch))
	need := map[string]bool{} // directory → its failure matters
	for i, r := range batch {
		if r.op != nil {
			if err := r.op(); err != nil {
				errs[i] = storageErr(err)
				continue
			}
		}
		for _, d := range r.dirs {
			need[d] = true
		}
		for _, d := range r.also {
			if !need[d] {
				need[d] = false
			}
		}
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed = map[string]error{}
	)
	for d := range need {
		wg.Go(func() {
			if err := c.syncDir(d); err != nil {
				mu.Lock()
				failed[d] = storageErr(err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i, r := range batch {
		if errs[i] == nil {
			for _, d := range r.dirs {
				if err := failed[d]; err != nil {
					errs[i] = err
					break
				}
			}
		}
		r.done <- errs[i]
	}
}
