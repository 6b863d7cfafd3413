package security

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// badChange is a state of the files that did not load, remembered so that
// it is logged once however often it is read again.
type badChange struct {
	key    [sha256.Size]byte
	err    error
	logged bool
}

// Reload reads the files now and, when they changed and load, makes new
// handshakes use them, logging "tls: reloaded" with the new serial and
// expiry. Open connections keep the material they were made with. Files that
// have not changed since the last load are a no-op that returns nil and logs
// nothing.
//
// Files that changed but do not load (a bad or half-written file, a key that
// does not match its certificate, an expired certificate) leave the current
// material in use: the error is logged once for that change and returned by
// every Reload until the files change again. The watcher started by
// [TLS.Start] reloads the same way, except that it logs a bad change only
// once the files have stayed so for a moment (see [TLS.Start]); Reload may
// be called directly at any time.
func (t *TLS) Reload() error {
	_, err := t.reload(true)
	return err
}

// reload is Reload. With report false (the watcher), a change that does not
// load is not logged the first time it is seen: reload returns again true,
// and logs it when the next call finds the files unchanged. A certificate
// written before its key, or a file caught half-written, is then not
// reported once its writer has finished.
func (t *TLS) reload(report bool) (again bool, err error) {
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	contents, key, err := t.readFiles()
	current := t.current.Load()
	if key == current.key {
		t.bad = nil // back to what is in use: the next bad change is news
		t.reloadFailed.Store(false)
		return false, nil
	}
	if t.bad == nil || key != t.bad.key {
		var m *material
		if err == nil {
			m, err = t.load(contents, key)
		}
		if err == nil {
			t.bad = nil
			t.use(m)
			t.reloadFailed.Store(false)
			t.log.Info("tls: reloaded", m.logAttrs(t.mTLS)...)
			return false, nil
		}
		t.bad = &badChange{key: key, err: fmt.Errorf("security: reload TLS: %w", err)}
		t.reloadFailed.Store(true)
		if !report {
			return true, t.bad.err
		}
	}
	if !t.bad.logged {
		t.bad.logged = true
		t.log.Error("tls: reload failed, the current certificate stays in use",
			slog.Any("error", t.bad.err), slog.String("serial", current.leaf.SerialNumber.Text(16)))
	}
	return false, t.bad.err
}

// Start starts watching the files: their directories through fsnotify (a
// file replaced by a rename, as atomic writers and Kubernetes volume updates
// do, is seen as an event in its directory), and a re-read every
// ReloadInterval as a backstop for what watching misses (a file that is a
// symlink into another directory, a directory replaced, an unsupported file
// system). Events are coalesced: the files are read once, shortly after the
// first event of a burst. Files that do not load are read again after that
// same short delay, and the error is logged when they have not changed in
// between: a writer still at work is not reported. When watching cannot
// start, a warning is logged and the interval alone remains. Start returns
// at once; it does nothing after the first call or after [TLS.Stop].
//
// With the Workload API as the source, Start instead opens its stream of
// updates (see [TLS.Reload] for what an update that cannot be used does).
func (t *TLS) Start() {
	t.startOnce.Do(func() {
		if t.workloadAddr != "" {
			ctx, cancel := context.WithCancel(context.Background())
			t.cancelWatch = cancel
			go t.watchWorkload(ctx)
			return
		}
		w := t.watch()
		go t.run(w)
	})
}

// Stop stops watching and waits for the watcher to finish. The material in
// use stays; [TLS.Reload] still works. It may be called more than once, and
// without Start.
func (t *TLS) Stop() {
	t.startOnce.Do(func() { close(t.done) }) // never started: Start is now a no-op
	t.stopOnce.Do(func() {
		close(t.stop)
		if t.cancelWatch != nil {
			t.cancelWatch()
		}
	})
	<-t.done
}

// watch returns a watcher on the files' directories, or nil when one cannot
// be had.
func (t *TLS) watch() *fsnotify.Watcher {
	w, err := t.newWatcher()
	if err != nil {
		t.log.Warn("tls: cannot watch the certificate files; re-reading them on the interval only",
			slog.Any("error", err), slog.Duration("interval", t.interval))
		return nil
	}
	for _, dir := range t.dirs() {
		if err := w.Add(dir); err != nil {
			_ = w.Close() // the watch failed already; nothing more to report
			t.log.Warn("tls: cannot watch the certificate files; re-reading them on the interval only",
				slog.Any("error", fmt.Errorf("watch %s: %w", dir, err)), slog.Duration("interval", t.interval))
			return nil
		}
	}
	return w
}

// dirs are the distinct directories of the files.
func (t *TLS) dirs() []string {
	var dirs []string
	for _, f := range t.files {
		if dir := filepath.Dir(f); !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

// run reloads on the watcher's events (w may be nil) and on the interval
// until Stop.
func (t *TLS) run(w *fsnotify.Watcher) {
	defer close(t.done)
	var (
		events <-chan fsnotify.Event
		errs   <-chan error
	)
	if w != nil {
		defer func() { _ = w.Close() }() // nothing useful to do with a close error on the way out
		events, errs = w.Events, w.Errors
	}
	ticker := time.NewTicker(t.interval)
	defer ticker.Stop()
	settle := time.NewTimer(t.settle)
	settle.Stop()
	defer settle.Stop()
	pending := false

	// Reload logs its own errors; an error here only asks for another look.
	look := func() {
		if again, _ := t.reload(false); again && !pending {
			pending = true
			settle.Reset(t.settle)
		}
	}
	look() // a change between NewTLS and the watch
	for {
		select {
		case <-t.stop:
			return
		case _, ok := <-events:
			if !ok { // the watcher failed and closed: the interval remains
				events, errs = nil, nil
				continue
			}
			if !pending {
				pending = true
				settle.Reset(t.settle)
			}
		case err, ok := <-errs:
			if !ok {
				events, errs = nil, nil
				continue
			}
			// An overflow loses events: read the files to be sure.
			t.log.Warn("tls: watching the certificate files", slog.Any("error", err))
			look()
		case <-settle.C:
			pending = false
			look()
		case <-ticker.C:
			look()
		}
	}
}
