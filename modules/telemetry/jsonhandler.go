package telemetry

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// jsonHandler is an slog.Handler whose output is byte for byte that of an
// slog.JSONHandler made with the same writer and options, but which encodes
// the common record itself, without allocating: a record with a time in years
// 0-9999 and attributes of kinds String, Int64, Uint64, Bool, Duration and
// Float64 (without an exponent in JSON: magnitudes 1e-6 to 1e21, and 0) only, from a handler without ReplaceAttr or AddSource and not derived with
// WithAttrs or WithGroup (those return the slog.JSONHandler's own). Anything
// else is handed to the slog.JSONHandler it wraps.
//
// Both paths write each record with one Write, under one mutex.
type jsonHandler struct {
	slow *slog.JSONHandler
	w    *lockedWriter
	// fast is false when the options rule the fast path out for every record.
	fast bool
}

var _ slog.Handler = (*jsonHandler)(nil)

// lockedWriter serializes Writes to w, both the slow handler's (and those of
// the handlers derived from it) and the fast path's.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// newJSONHandler returns a handler writing what slog.NewJSONHandler(w, opts)
// would, faster.
func newJSONHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	if opts == nil {
		opts = &slog.HandlerOptions{}
	}
	lw := &lockedWriter{w: w}
	return &jsonHandler{
		slow: slog.NewJSONHandler(lw, opts),
		w:    lw,
		fast: opts.ReplaceAttr == nil && !opts.AddSource,
	}
}

// Enabled reports whether the level is at least the options' Level (Info by
// default), as slog.JSONHandler does.
func (h *jsonHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.slow.Enabled(ctx, level)
}

// WithAttrs returns the slog.JSONHandler's WithAttrs.
func (h *jsonHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.slow.WithAttrs(attrs)
}

// WithGroup returns the slog.JSONHandler's WithGroup.
func (h *jsonHandler) WithGroup(name string) slog.Handler {
	return h.slow.WithGroup(name)
}

// maxPooledBuf is the largest buffer put back in the pool, as in log/slog.
const maxPooledBuf = 16 << 10

var jsonBufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}

// Handle writes r as slog.JSONHandler would, encoding it itself when it can.
func (h *jsonHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.fast || r.Time.IsZero() {
		return h.slow.Handle(ctx, r)
	}
	bp := jsonBufPool.Get().(*[]byte)
	buf, ok := appendJSONRecord((*bp)[:0], r)
	var err error
	if ok {
		_, err = h.w.Write(buf)
	}
	if cap(buf) <= maxPooledBuf {
		*bp = buf[:0]
		jsonBufPool.Put(bp)
	}
	if !ok {
		return h.slow.Handle(ctx, r)
	}
	return err
}

// appendJSONRecord appends r's line to buf. It reports false, with buf to be
// discarded, when r needs the slow path: a zero time (slog omits it), a year
// outside 0-9999 (slog writes an error for it) or an attribute of another
// kind.
func appendJSONRecord(buf []byte, r slog.Record) ([]byte, bool) {
	if r.Time.IsZero() {
		return buf, false
	}
	buf = append(buf, `{"time":"`...)
	start := len(buf)
	// slog strips the monotonic reading (Round(0)); formatting ignores it.
	buf = r.Time.AppendFormat(buf, time.RFC3339Nano)
	// RFC 3339's year is exactly 4 digits: a '-' first means a negative
	// year, no '-' after 4 digits a year past 9999.
	if buf[start] == '-' || buf[start+4] != '-' {
		return buf, false
	}
	buf = append(buf, `","level":"`...)
	buf = appendLevel(buf, r.Level)
	buf = append(buf, `","msg":"`...)
	buf = appendEscapedJSONString(buf, r.Message)
	buf = append(buf, '"')
	ok := true
	r.Attrs(func(a slog.Attr) bool {
		v := a.Value
		switch v.Kind() {
		case slog.KindString:
			buf = appendKey(buf, a.Key)
			buf = append(buf, '"')
			buf = appendEscapedJSONString(buf, v.String())
			buf = append(buf, '"')
		case slog.KindInt64:
			buf = appendKey(buf, a.Key)
			buf = strconv.AppendInt(buf, v.Int64(), 10)
		case slog.KindUint64:
			buf = appendKey(buf, a.Key)
			buf = strconv.AppendUint(buf, v.Uint64(), 10)
		case slog.KindBool:
			buf = appendKey(buf, a.Key)
			buf = strconv.AppendBool(buf, v.Bool())
		case slog.KindDuration:
			// Nanoseconds, as json.Marshal writes a time.Duration.
			buf = appendKey(buf, a.Key)
			buf = strconv.AppendInt(buf, int64(v.Duration()), 10)
		case slog.KindFloat64:
			// As json.Marshal writes it where it uses no exponent (the
			// access line's duration_ms); NaN, infinities and exponents
			// are slog's.
			f := v.Float64()
			if abs := math.Abs(f); math.IsNaN(f) || abs != 0 && (abs < 1e-6 || abs >= 1e21) {
				ok = false
				break
			}
			buf = appendKey(buf, a.Key)
			buf = strconv.AppendFloat(buf, f, 'f', -1, 64)
		default:
			ok = false
		}
		return ok
	})
	return append(buf, '}', '\n'), ok
}

// appendKey appends `,"key":`. An empty key is written too: only the zero
// Attr, whose kind is Any, is elided by slog.
func appendKey(buf []byte, key string) []byte {
	buf = append(buf, ',', '"')
	buf = appendEscapedJSONString(buf, key)
	return append(buf, '"', ':')
}

// appendLevel appends l.String() without allocating: DEBUG, INFO, WARN or
// ERROR, followed by the signed offset from it when not zero ("INFO+2",
// "DEBUG-3"). None needs escaping.
func appendLevel(buf []byte, l slog.Level) []byte {
	var base string
	var off slog.Level
	switch {
	case l < slog.LevelInfo:
		base, off = "DEBUG", l-slog.LevelDebug
	case l < slog.LevelWarn:
		base, off = "INFO", l-slog.LevelInfo
	case l < slog.LevelError:
		base, off = "WARN", l-slog.LevelWarn
	default:
		base, off = "ERROR", l-slog.LevelError
	}
	buf = append(buf, base...)
	if off == 0 {
		return buf
	}
	if off > 0 {
		buf = append(buf, '+')
	}
	return strconv.AppendInt(buf, int64(off), 10)
}

// appendEscapedJSONString appends s escaped for a JSON string, without the
// quotes, exactly as log/slog's function of the same name (encoding/json's
// with HTML escaping off): '"', '\\' and bytes below 0x20 escaped (\n, \r,
// \t by name, others as \u00XX), 0x7f and <>& as they are, each invalid
// UTF-8 byte as \ufffd, U+2028 and U+2029 as \u2028 and \u2029.
func appendEscapedJSONString(buf []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		// Skip 8 bytes at a time while none needs a look.
		for i+8 <= len(s) && !needsLook(load64(s, i)) {
			i += 8
		}
		if i == len(s) {
			break
		}
		b := s[i]
		if b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch b {
			case '\\', '"':
				buf = append(buf, '\\', b)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i++
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(buf, s[start:]...)
}

const hexDigits = "0123456789abcdef"

// load64 returns the 8 bytes of s at i as a little-endian word (one load).
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// needsLook reports whether any of the 8 bytes in x is not in jsonSafe: at or
// above 0x80 (UTF-8 to check), below 0x20, '"' or '\\'. Each term is exact
// as a whole (https://graphics.stanford.edu/~seander/bithacks.html#HasLessInWord
// and #ValueInWord), though not byte by byte.
func needsLook(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	ctl := (x - 0x20*ones) &^ x
	q := x ^ '"'*ones
	q = (q - ones) &^ q
	bs := x ^ '\\'*ones
	bs = (bs - ones) &^ bs
	return (x|ctl|q|bs)&highs != 0
}

// jsonSafe reports the ASCII bytes written unescaped: all but the control
// characters below 0x20, '"' and '\\' (0x7f is written as it is).
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()
