package app

import (
	"log/slog"
	"sync"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
)

// fxLog sends Fx's own events to the service's logger, at debug level (errors
// stay errors). The logger is the telemetry module's, built from the
// configuration, so it cannot be Fx's logger from the start: a bad
// configuration would make Fx fall back to printing its whole event stream,
// where the service owes one line. Events wait here until the app's first
// root invoke hands over the logger; if the app fails before that, they are
// dropped and the app's error says what happened.
type fxLog struct {
	mu      sync.Mutex
	log     fxevent.Logger
	pending []fxevent.Event
}

// maxPendingEvents bounds the events kept before the logger arrives (a
// large app provides a few hundred).
const maxPendingEvents = 4096

func (l *fxLog) LogEvent(e fxevent.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.log != nil {
		l.log.LogEvent(e)
		return
	}
	if len(l.pending) < maxPendingEvents {
		l.pending = append(l.pending, e)
	}
}

// options are the Fx options that install l: it is the app's event logger,
// and it gets the service's logger, when there is one, in the first root
// invoke.
func (l *fxLog) options() fx.Option {
	return fx.Options(
		fx.WithLogger(func() fxevent.Logger { return l }),
		fx.Invoke(l.setLogger),
	)
}

// fxLogParams are what setLogger takes: a replaced telemetry module may
// provide no logger.
type fxLogParams struct {
	fx.In

	Log *slog.Logger `optional:"true"`
}

func (l *fxLog) setLogger(p fxLogParams) {
	log := p.Log
	if log == nil {
		log = slog.Default()
	}
	s := &fxevent.SlogLogger{Logger: log}
	s.UseLogLevel(slog.LevelDebug)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log = s
	for _, e := range l.pending {
		s.LogEvent(e)
	}
	l.pending = nil
}
