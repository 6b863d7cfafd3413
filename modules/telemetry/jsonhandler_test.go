package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// handleBoth hands r to newJSONHandler and to slog.NewJSONHandler, both made
// with opts, and returns what each wrote.
func handleBoth(t testing.TB, opts *slog.HandlerOptions, r slog.Record) (fast, slow string) {
	t.Helper()
	var fb, sb bytes.Buffer
	if err := newJSONHandler(&fb, opts).Handle(context.Background(), r.Clone()); err != nil {
		t.Fatalf("fast Handle: %v", err)
	}
	if err := slog.NewJSONHandler(&sb, opts).Handle(context.Background(), r.Clone()); err != nil {
		t.Fatalf("slog Handle: %v", err)
	}
	return fb.String(), sb.String()
}

func newRecord(t time.Time, level slog.Level, msg string, attrs ...slog.Attr) slog.Record {
	r := slog.NewRecord(t, level, msg, 0)
	r.AddAttrs(attrs...)
	return r
}

var testTime = time.Date(2024, 3, 9, 17, 4, 5, 123456789, time.UTC)

// accessAttrs are the attributes of the access line (serverStage.finish and
// LogHandler).
func accessAttrs() []slog.Attr {
	return []slog.Attr{
		slog.String("method", "GET"),
		slog.String("route", "/v1/items/:id"),
		slog.Int("status", 200),
		slog.Float64("duration_ms", 1.234567),
		slog.String("client", "10.0.0.7"),
		slog.String("request_id", "01HV4Z8K6Q2YB3N5M7P9R1T3W5"),
		slog.String("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
		slog.String("span_id", "00f067aa0ba902b7"),
	}
}

func TestJSONHandlerAccessLine(t *testing.T) {
	r := newRecord(testTime, slog.LevelInfo, "request", accessAttrs()...)
	fast, slow := handleBoth(t, nil, r)
	const want = `{"time":"2024-03-09T17:04:05.123456789Z","level":"INFO","msg":"request",` +
		`"method":"GET","route":"/v1/items/:id","status":200,"duration_ms":1.234567,"client":"10.0.0.7",` +
		`"request_id":"01HV4Z8K6Q2YB3N5M7P9R1T3W5","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"}` + "\n"
	if fast != want || slow != want {
		t.Errorf("access line:\nfast %q\nslog %q\nwant %q", fast, slow, want)
	}
	if _, ok := appendJSONRecord(nil, r); !ok {
		t.Error("the access line did not take the fast path")
	}
}

// The special characters of JSON strings, slog's escaping and UTF-8.
var specials = []string{
	`"`, `\`, "\x00", "\x01", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1b", "\x1f", "\x7f",
	"<", ">", "&", "'", "/", "\u2028", "\u2029", "\u2027", "\u202a",
	"é", "ß", "世界", "😀", "\ufffd", "\ufeff",
	"\x80", "\xff", "\xc3", "\xe2\x80", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80", "\xf0\x9f\x98",
}

func TestJSONHandlerTable(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		ny = time.FixedZone("EST", -5*3600)
	}
	tests := []struct {
		name string
		r    slog.Record
		fast bool // whether the record takes the fast path
	}{
		{"no attrs", newRecord(testTime, slog.LevelInfo, "hello"), true},
		{"empty msg", newRecord(testTime, slog.LevelInfo, ""), true},
		{"empty key and value", newRecord(testTime, slog.LevelInfo, "m", slog.String("", "")), true},
		{"duplicate keys", newRecord(testTime, slog.LevelWarn, "m",
			slog.String("k", "a"), slog.Int("k", 1), slog.Bool("k", true), slog.String("msg", "x"), slog.String("time", "y")), true},
		{"level debug", newRecord(testTime, slog.LevelDebug, "m"), true},
		{"level warn", newRecord(testTime, slog.LevelWarn, "m"), true},
		{"level error", newRecord(testTime, slog.LevelError, "m"), true},
		{"level +2", newRecord(testTime, slog.Level(2), "m"), true},
		{"level -3", newRecord(testTime, slog.Level(-3), "m"), true},
		{"level -5", newRecord(testTime, slog.Level(-5), "m"), true},
		{"level +13", newRecord(testTime, slog.Level(13), "m"), true},
		{"level min", newRecord(testTime, slog.Level(math.MinInt), "m"), true},
		{"level max", newRecord(testTime, slog.Level(math.MaxInt), "m"), true},
		{"ints", newRecord(testTime, slog.LevelInfo, "m",
			slog.Int64("min", math.MinInt64), slog.Int64("max", math.MaxInt64), slog.Int("zero", 0),
			slog.Uint64("umax", math.MaxUint64), slog.Uint64("uzero", 0)), true},
		{"bools", newRecord(testTime, slog.LevelInfo, "m", slog.Bool("t", true), slog.Bool("f", false)), true},
		{"durations", newRecord(testTime, slog.LevelInfo, "m",
			slog.Duration("neg", -1500*time.Millisecond), slog.Duration("min", math.MinInt64),
			slog.Duration("max", math.MaxInt64), slog.Duration("zero", 0)), true},
		{"whole second", newRecord(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), slog.LevelInfo, "m"), true},
		{"trailing zero nanos", newRecord(time.Date(2024, 1, 1, 0, 0, 0, 120000000, time.UTC), slog.LevelInfo, "m"), true},
		{"one nano", newRecord(time.Date(2024, 1, 1, 0, 0, 0, 1, time.UTC), slog.LevelInfo, "m"), true},
		{"positive offset", newRecord(time.Date(2024, 1, 1, 0, 0, 0, 5, time.FixedZone("IST", 5*3600+1800)), slog.LevelInfo, "m"), true},
		{"negative offset", newRecord(time.Date(2024, 1, 1, 0, 0, 0, 5, time.FixedZone("NST", -(3*3600+1800))), slog.LevelInfo, "m"), true},
		{"offset with seconds", newRecord(time.Date(1900, 1, 1, 0, 0, 0, 0, time.FixedZone("LMT", -(17*60+30))), slog.LevelInfo, "m"), true},
		{"offset below a minute", newRecord(time.Date(1900, 1, 1, 0, 0, 0, 0, time.FixedZone("X", -30)), slog.LevelInfo, "m"), true},
		{"new york", newRecord(time.Date(2024, 7, 4, 12, 0, 0, 999, ny), slog.LevelInfo, "m"), true},
		{"local", newRecord(time.Now(), slog.LevelInfo, "monotonic reading"), true},
		{"year 0", newRecord(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), slog.LevelInfo, "m"), true},
		{"year 9999", newRecord(time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), slog.LevelInfo, "m"), true},
		// slog writes an error string for these years, before the time.
		{"year -1", newRecord(time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), slog.LevelInfo, "m"), false},
		{"year 10000", newRecord(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), slog.LevelInfo, "m"), false},
		{"zero time", newRecord(time.Time{}, slog.LevelInfo, "m", slog.Int("a", 1)), false},
		{"floats", newRecord(testTime, slog.LevelInfo, "m", slog.Float64("zero", 0), slog.Float64("neg zero", math.Copysign(0, -1)),
			slog.Float64("ms", 0.412), slog.Float64("small", 1e-6), slog.Float64("neg", -1234.5678), slog.Float64("big", 1e20)), true},
		{"float 1e21", newRecord(testTime, slog.LevelInfo, "m", slog.Int("a", 1), slog.Float64("f", 1e21)), false},
		{"float below 1e-6", newRecord(testTime, slog.LevelInfo, "m", slog.Float64("f", 9.99e-7)), false},
		{"float NaN", newRecord(testTime, slog.LevelInfo, "m", slog.Float64("f", math.NaN())), false},
		{"float -Inf", newRecord(testTime, slog.LevelInfo, "m", slog.Float64("f", math.Inf(-1))), false},
		{"time attr", newRecord(testTime, slog.LevelInfo, "m", slog.Time("t", testTime)), false},
		{"group", newRecord(testTime, slog.LevelInfo, "m", slog.Group("g", slog.Int("a", 1), slog.String("b", "x"))), false},
		{"empty group", newRecord(testTime, slog.LevelInfo, "m", slog.Group("g"), slog.Int("a", 1)), true},
		{"inline group", newRecord(testTime, slog.LevelInfo, "m", slog.Group("", slog.Int("a", 1))), false},
		{"any", newRecord(testTime, slog.LevelInfo, "m", slog.Any("a", map[string]int{"x": 1})), false},
		{"any nil", newRecord(testTime, slog.LevelInfo, "m", slog.Any("a", nil)), false},
		{"error", newRecord(testTime, slog.LevelInfo, "m", slog.Any("err", errors.New("bad \"thing\"\n"))), false}, //nolint:revive // error-strings: the quotes and newline are what the handler must escape
		{"log valuer", newRecord(testTime, slog.LevelInfo, "m", slog.Any("v", valuer{})), false},
		{"zero attr", newRecord(testTime, slog.LevelInfo, "m", slog.Attr{}, slog.Int("a", 1)), false},
		{"fallback after many attrs", newRecord(testTime, slog.LevelInfo, "m",
			append(accessAttrs(), slog.Time("t", testTime))...), false},
	}
	for _, s := range specials {
		tests = append(tests, struct {
			name string
			r    slog.Record
			fast bool
		}{fmt.Sprintf("special %q", s), newRecord(testTime, slog.LevelInfo, "a"+s+"b", slog.String("k"+s, s+"z"+s)), true})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fast, slow := handleBoth(t, nil, tt.r)
			if fast != slow {
				t.Errorf("\nfast %q\nslog %q", fast, slow)
			}
			got, ok := appendJSONRecord(nil, tt.r)
			if ok != tt.fast {
				t.Errorf("fast path taken: %v, want %v", ok, tt.fast)
			}
			if ok && string(got) != slow {
				t.Errorf("\nappendJSONRecord %q\nslog             %q", got, slow)
			}
		})
	}
}

// needsLook agrees with jsonSafe for every word of safe filler with any two
// bytes in any two places.
func TestNeedsLook(t *testing.T) {
	safe := func(b byte) bool { return b < 0x80 && jsonSafe[b] }
	for _, fill := range []byte{'a', ' ', 0x7f} {
		for p1 := range 8 {
			for p2 := p1; p2 < 8; p2++ {
				for b1 := range 256 {
					for b2 := range 256 {
						var w [8]byte
						for i := range w {
							w[i] = fill
						}
						w[p1], w[p2] = byte(b1), byte(b2)
						x := uint64(0)
						for i := range w {
							x |= uint64(w[i]) << (8 * i)
						}
						want := !safe(w[p1]) || !safe(w[p2])
						if got := needsLook(x); got != want {
							t.Fatalf("needsLook(%q) = %v, want %v", w, got, want)
						}
					}
				}
			}
		}
	}
	if got := load64("\x01\x02\x03\x04\x05\x06\x07\x08\x09", 1); got != 0x0908070605040302 {
		t.Errorf("load64 = %#x", got)
	}
}

// Every byte and special sequence at every offset of a longer string, across
// the 8-byte steps of appendEscapedJSONString.
func TestJSONHandlerEscapePositions(t *testing.T) {
	seqs := append([]string{}, specials...)
	for b := range 256 {
		seqs = append(seqs, string([]byte{byte(b)}))
	}
	const filler = "abcdefghijklmnopqrstuvwx"
	for _, seq := range seqs {
		for p := 0; p <= len(filler); p++ {
			str := filler[:p] + seq + filler[p:]
			r := newRecord(testTime, slog.LevelInfo, str, slog.String(str, str+seq))
			fast, slow := handleBoth(t, nil, r)
			if fast != slow {
				t.Fatalf("%q:\nfast %q\nslog %q", str, fast, slow)
			}
		}
	}
}

type valuer struct{}

func (valuer) LogValue() slog.Value { return slog.StringValue("resolved") }

// randString returns a random string of specials, ASCII and random bytes.
func randString(rng *rand.Rand) string {
	var b strings.Builder
	for n := rng.IntN(12); n > 0; n-- {
		switch rng.IntN(4) {
		case 0:
			b.WriteString(specials[rng.IntN(len(specials))])
		case 1:
			b.WriteByte(byte(rng.IntN(256)))
		case 2:
			b.WriteRune(rune(rng.IntN(0x11000)))
		default:
			b.WriteString("abcXYZ 09-_.:/"[rng.IntN(14):][:1])
		}
	}
	return b.String()
}

var randInts = []int64{math.MinInt64, math.MinInt64 + 1, -1, 0, 1, 9, 10, math.MaxInt64 - 1, math.MaxInt64}
var randUints = []uint64{0, 1, 10, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64}

func randAttr(rng *rand.Rand, keys []string, slowKinds bool) slog.Attr {
	key := keys[rng.IntN(len(keys))]
	kinds := 6
	if slowKinds {
		kinds = 11
	}
	switch rng.IntN(kinds) {
	case 0:
		return slog.String(key, randString(rng))
	case 1:
		if rng.IntN(2) == 0 {
			return slog.Int64(key, randInts[rng.IntN(len(randInts))])
		}
		return slog.Int64(key, int64(rng.Uint64()))
	case 2:
		if rng.IntN(2) == 0 {
			return slog.Uint64(key, randUints[rng.IntN(len(randUints))])
		}
		return slog.Uint64(key, rng.Uint64())
	case 3:
		return slog.Bool(key, rng.IntN(2) == 0)
	case 4:
		if rng.IntN(3) == 0 {
			return slog.Duration(key, time.Duration(randInts[rng.IntN(len(randInts))]))
		}
		return slog.Duration(key, time.Duration(rng.Int64N(2e12)-1e12))
	case 5:
		return slog.String(key, "")
	case 6:
		return slog.Float64(key, rng.NormFloat64()*1e10)
	case 7:
		return slog.Time(key, randTime(rng))
	case 8:
		return slog.Group(key, slog.Int("a", rng.IntN(5)), slog.String("s", randString(rng)))
	case 9:
		return slog.Any(key, []string{randString(rng)})
	default:
		return slog.Any(key, valuer{})
	}
}

var randZones = []*time.Location{
	time.UTC, time.Local,
	time.FixedZone("A", 5*3600+1800), time.FixedZone("B", -(9*3600 + 30*60)),
	time.FixedZone("C", 14*3600), time.FixedZone("D", -12*3600),
	time.FixedZone("E", 1234), time.FixedZone("F", -59),
}

func init() {
	for _, name := range []string{"America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe"} {
		if loc, err := time.LoadLocation(name); err == nil {
			randZones = append(randZones, loc)
		}
	}
}

func randTime(rng *rand.Rand) time.Time {
	sec := rng.Int64N(4102444800) // 1970 to 2100
	var nsec int64
	switch rng.IntN(4) {
	case 0: // whole second
	case 1:
		nsec = rng.Int64N(1000) * 1e6 // milliseconds: trailing zeros
	case 2:
		nsec = rng.Int64N(10) * int64(math.Pow10(rng.IntN(9)))
	default:
		nsec = rng.Int64N(1e9)
	}
	return time.Unix(sec, nsec).In(randZones[rng.IntN(len(randZones))])
}

var randLevels = []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, 2, -3, -5, 1, 3, 5, 7, 9, 100, -100}

func randRecord(rng *rand.Rand, slowKinds bool) slog.Record {
	level := randLevels[rng.IntN(len(randLevels))]
	if rng.IntN(4) == 0 {
		level = slog.Level(rng.IntN(41) - 20)
	}
	// A few keys, so that some repeat, and random ones.
	keys := []string{"k", "status", "msg", "", randString(rng), randString(rng)}
	r := slog.NewRecord(randTime(rng), level, randString(rng), 0)
	for n := rng.IntN(12); n > 0; n-- { // past the 5 a Record holds inline
		r.AddAttrs(randAttr(rng, keys, slowKinds))
	}
	return r
}

func TestJSONHandlerRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	fastN := 0
	const n = 2000
	for i := range n {
		r := randRecord(rng, i%4 == 3) // a quarter may have slow kinds
		fast, slow := handleBoth(t, nil, r)
		if fast != slow {
			t.Fatalf("record %d:\nfast %q\nslog %q", i, fast, slow)
		}
		if got, ok := appendJSONRecord(nil, r); ok {
			fastN++
			if string(got) != slow {
				t.Fatalf("record %d:\nappendJSONRecord %q\nslog             %q", i, got, slow)
			}
		} else if i%4 != 3 {
			t.Fatalf("record %d has only fast kinds but took the slow path: %q", i, slow)
		}
		if !json.Valid([]byte(fast)) {
			t.Fatalf("record %d: invalid JSON %q", i, fast)
		}
	}
	if fastN < n*3/4 {
		t.Errorf("%d of %d records took the fast path, want at least %d", fastN, n, n*3/4)
	}
}

// The options that rule the fast path out are passed on to slog.
func TestJSONHandlerOptions(t *testing.T) {
	pcs := make([]uintptr, 1)
	runtime.Callers(1, pcs)
	r := slog.NewRecord(testTime, slog.LevelInfo, "m", pcs[0])
	r.AddAttrs(accessAttrs()...)
	for name, opts := range map[string]*slog.HandlerOptions{
		"add source": {AddSource: true},
		"replace attr": {ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == "status" || a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			a.Key = strings.ToUpper(a.Key)
			return a
		}},
		"level": {Level: slog.LevelDebug},
	} {
		t.Run(name, func(t *testing.T) {
			fast, slow := handleBoth(t, opts, r)
			if fast != slow {
				t.Errorf("\nfast %q\nslog %q", fast, slow)
			}
		})
	}
}

func TestJSONHandlerDerived(t *testing.T) {
	r := newRecord(testTime, slog.LevelInfo, "m", accessAttrs()...)
	empty := newRecord(testTime, slog.LevelInfo, "m")
	derive := map[string]func(slog.Handler) slog.Handler{
		"attrs": func(h slog.Handler) slog.Handler {
			return h.WithAttrs([]slog.Attr{slog.String("service", "x\"y"), slog.Float64("f", 1.5)})
		},
		"group": func(h slog.Handler) slog.Handler { return h.WithGroup("g") },
		"group attrs": func(h slog.Handler) slog.Handler {
			return h.WithGroup("g").WithAttrs([]slog.Attr{slog.Int("a", 1)}).WithGroup("h")
		},
		"empty group name": func(h slog.Handler) slog.Handler { return h.WithGroup("") },
		"empty attrs":      func(h slog.Handler) slog.Handler { return h.WithAttrs(nil) },
	}
	for name, d := range derive {
		t.Run(name, func(t *testing.T) {
			var fb, sb bytes.Buffer
			fh := d(newJSONHandler(&fb, nil))
			sh := d(slog.NewJSONHandler(&sb, nil))
			for _, r := range []slog.Record{r, empty} {
				_ = fh.Handle(context.Background(), r)
				_ = sh.Handle(context.Background(), r)
			}
			if fb.String() != sb.String() {
				t.Errorf("\nfast %q\nslog %q", fb.String(), sb.String())
			}
		})
	}
}

func TestJSONHandlerEnabled(t *testing.T) {
	ctx := context.Background()
	var lv slog.LevelVar
	for _, tt := range []struct {
		opts *slog.HandlerOptions
		min  slog.Level
	}{
		{nil, slog.LevelInfo},
		{&slog.HandlerOptions{}, slog.LevelInfo},
		{&slog.HandlerOptions{Level: slog.LevelWarn}, slog.LevelWarn},
		{&slog.HandlerOptions{Level: slog.Level(-3)}, slog.Level(-3)},
		{&slog.HandlerOptions{Level: &lv}, slog.LevelInfo},
	} {
		h := newJSONHandler(io.Discard, tt.opts)
		for l := slog.LevelDebug - 2; l <= slog.LevelError+2; l++ {
			if got, want := h.Enabled(ctx, l), l >= tt.min; got != want {
				t.Errorf("opts %+v: Enabled(%v) = %v, want %v", tt.opts, l, got, want)
			}
		}
	}
	h := newJSONHandler(io.Discard, &slog.HandlerOptions{Level: &lv})
	lv.Set(slog.LevelError)
	if h.Enabled(ctx, slog.LevelWarn) || !h.Enabled(ctx, slog.LevelError) {
		t.Error("Enabled does not follow a LevelVar")
	}
}

// Fast records, slow ones and those of derived handlers, written concurrently
// to a writer that is not safe for concurrent use: every Write is under the
// one lock (go test -race), and each line is whole.
func TestJSONHandlerConcurrent(t *testing.T) {
	var buf bytes.Buffer
	h := newJSONHandler(&buf, nil)
	derived := h.WithAttrs([]slog.Attr{slog.String("d", "1")}).WithGroup("g")
	const goroutines, each = 8, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			r := newRecord(testTime, slog.LevelInfo, "fast", accessAttrs()...)
			s := newRecord(testTime, slog.LevelInfo, "slow", slog.Time("t", testTime.Add(time.Duration(g))))
			for i := range each {
				switch i % 3 {
				case 0:
					_ = h.Handle(context.Background(), r)
				case 1:
					_ = h.Handle(context.Background(), s)
				default:
					_ = derived.Handle(context.Background(), r)
				}
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != goroutines*each {
		t.Fatalf("%d lines, want %d", len(lines), goroutines*each)
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("invalid line %q", l)
		}
	}
}

func TestJSONHandlerAllocs(t *testing.T) {
	h := newJSONHandler(io.Discard, nil)
	ctx := context.Background()
	for name, r := range map[string]slog.Record{
		"access line": newRecord(time.Now(), slog.LevelInfo, "request", accessAttrs()...),
		"escapes and zone": newRecord(time.Now().In(time.FixedZone("X", -3600)), slog.Level(-3), "a\"\n\u2028\xff",
			slog.String("k\t", "<&>\x00é"), slog.Uint64("u", math.MaxUint64), slog.Bool("b", true),
			slog.Duration("d", -time.Second), slog.Int("i", -1), slog.String("k\t", "")),
	} {
		if _, ok := appendJSONRecord(nil, r); !ok {
			t.Fatalf("%s: not on the fast path", name)
		}
		if n := testing.AllocsPerRun(1000, func() { _ = h.Handle(ctx, r) }); n != 0 {
			t.Errorf("%s: %v allocations per Handle, want 0", name, n)
		}
	}
}

// BenchmarkAccessLine compares the handlers on the access line, handed the
// record directly and through a Logger as serverStage.finish logs it.
func BenchmarkAccessLine(b *testing.B) {
	handlers := []struct {
		name string
		h    slog.Handler
	}{
		{"fast", newJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})},
		{"slog", slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})},
	}
	ctx := context.Background()
	for _, hh := range handlers {
		b.Run("handler/"+hh.name, func(b *testing.B) {
			r := newRecord(time.Now(), slog.LevelInfo, "request", accessAttrs()...)
			b.ReportAllocs()
			for b.Loop() {
				_ = hh.h.Handle(ctx, r)
			}
		})
	}
	for _, hh := range handlers {
		b.Run("logger/"+hh.name, func(b *testing.B) {
			log := slog.New(hh.h)
			a := accessAttrs()
			b.ReportAllocs()
			for b.Loop() {
				log.LogAttrs(ctx, slog.LevelInfo, "request", a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7])
			}
		})
	}
}
