package security

import (
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
	key [sha256.Size]byte
	err error
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
// [TLS.Start] calls Reload; it may be called directly at any time.
func (t *TLS) Reload() error {
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	contents, key, err := t.readFiles()
	current := t.current.Load()
	switch {
	case key == current.key:
		t.bad = nil // back to what is in use: the next bad change is news
		return nil
	case t.bad != nil && key == t.bad.key:
		return t.bad.err
	}
	var m *material
	if err == nil {
		m, err = t.load(contents, key)
	}
	if err != nil {
		err = fmt.Errorf("security: reload TLS: %w", err)
		t.bad = &badChange{key: key, err: err}
		t.log.Error("tls: reload failed, the current certificate stays in use",
			slog.Any("error", err), slog.String("serial", current.leaf.SerialNumber.Text(16)))
		return err
	}
	t.bad = nil
	t.current.Store(m)
	t.log.Info("tls: reloaded", m.logAttrs(t.mTLS)...)
	return nil
}

// Start starts watching the files: their directories through fsnotify (a
// file replaced by a rename, as atomic writers and Kubernetes volume updates
// do, is seen as an event in its directory), and a re-read every
// ReloadInterval as a backstop for what watching misses (a file that is a
// symlink into another directory, a directory replaced, an unsupported file
// system). Events are coalesced: the files are read once, shortly after the
// first event of a burst. When watching cannot start, a warning is logged
// and the interval alone remains. Start returns at once; it does nothing
// after the first call or after [TLS.Stop].
func (t *TLS) Start() {
	t.startOnce.Do(func() {
		w := t.watch()
		go t.run(w)
	})
}

// Stop stops watching and waits for the watcher to finish. The material in
// use stays; [TLS.Reload] still works. It may be called more than once, and
// without Start.
func (t *TLS) Stop() {
	t.startOnce.Do(func() { close(t.done) }) // never started: Start is now a no-op
	t.stopOnce.Do(func() { close(t.stop) })
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
// until Stop. Reload logs its own errors, so run ignores them.
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

	_ = t.Reload() // a change between NewTLS and the watch
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
			_ = t.Reload()
		case <-settle.C:
			pending = false
			_ = t.Reload()
		case <-ticker.C:
			_ = t.Reload()
		}
	}
}
