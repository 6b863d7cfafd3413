package main

import (
	"bytes"
	"flag"
	"io"
	"net"
	"os"
	"strings"
	"testing"
)

// The help and the command line, in process: run() with the arguments a user
// types. The tests read the subcommands and their flags from the table,
// subcommands(), so that one added there is checked here too.

// runInProcess runs `service args...` in this process.
func runInProcess(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// definedFlags is cmd's flags as its setup function defines them, in
// flag.VisitAll's order (by name).
func definedFlags(cmd subcommand) []*flag.Flag {
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cmd.setup(fs)
	var flags []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
	return flags
}

// checkFlagLine reports what line lacks to describe f: "-name" first, its
// usage (the placeholder unquoted) and any default other than the zero value.
func checkFlagLine(t *testing.T, where, line string, f *flag.Flag) {
	t.Helper()
	_, usage := flag.UnquoteUsage(f)
	if fields := strings.Fields(line); len(fields) == 0 || fields[0] != "-"+f.Name {
		t.Errorf("%s: line %q, want -%s first", where, line, f.Name)
	}
	if !strings.Contains(line, usage) {
		t.Errorf("%s: the line of -%s does not hold its usage %q: %q", where, f.Name, usage, line)
	}
	zero := map[string]bool{"": true, "false": true, "0": true, "0s": true}
	if def := f.DefValue; !zero[def] && (!strings.Contains(line, "(default ") || !strings.Contains(line, def)) {
		t.Errorf("%s: the line of -%s does not give its default %q: %q", where, f.Name, def, line)
	}
}

// helpSections splits the help's listing into each subcommand's line and the
// lines under it (its flags), by the "  service" that starts a subcommand's
// line.
func helpSections(t *testing.T, help string) (heads []string, under [][]string) {
	t.Helper()
	for line := range strings.SplitSeq(help, "\n") {
		switch {
		case strings.HasPrefix(line, "  service"):
			heads = append(heads, strings.TrimSpace(line))
			under = append(under, nil)
		case strings.HasPrefix(line, "      ") && len(heads) > 0:
			under[len(under)-1] = append(under[len(under)-1], strings.TrimSpace(line))
		}
	}
	return heads, under
}

func TestHelpListsEverySubcommandAndItsFlags(t *testing.T) {
	code, help, stderr := runInProcess("help")
	if code != 0 || stderr != "" {
		t.Fatalf("service help: exit status %d, stderr %q; want 0 and nothing", code, stderr)
	}
	if !strings.HasPrefix(help, "Usage: service") {
		t.Errorf("service help does not start with the usage line:\n%s", help)
	}

	cmds := subcommands()
	heads, under := helpSections(t, help)
	if len(heads) != len(cmds) {
		t.Fatalf("service help lists %d subcommands, the table has %d:\n%s", len(heads), len(cmds), help)
	}
	for i, cmd := range cmds {
		head := heads[i]
		if want := strings.TrimSpace("service " + cmd.name); !strings.HasPrefix(head, want) || !strings.HasSuffix(head, cmd.summary) {
			t.Errorf("line %d of the listing: %q, want %q with the summary %q", i+1, head, want, cmd.summary)
		}
		flags := definedFlags(cmd)
		if len(under[i]) != len(flags) {
			t.Errorf("service help shows %d lines under %q, its flag set has %d flags: %q", len(under[i]), head, len(flags), under[i])
			continue
		}
		for j, f := range flags {
			checkFlagLine(t, "service help, "+head, under[i][j], f)
		}
	}

	// -h, -help and --help are the same help, on stdout, also after a flag.
	for _, args := range [][]string{{"-h"}, {"-help"}, {"--help"}, {"-config", "service.yaml", "-h"}} {
		code, stdout, stderr := runInProcess(args...)
		if code != 0 || stderr != "" || stdout != help {
			t.Errorf("service %s: exit status %d, stderr %q, stdout:\n%s\nwant 0, nothing, and what service help prints", strings.Join(args, " "), code, stderr, stdout)
		}
	}
}

// A subcommand or a flag added to the table shows up in the help with
// nothing else to edit.
func TestHelpShowsWhatTheTableDefines(t *testing.T) {
	added := subcommand{name: "reindex", summary: "rebuild the search index", setup: func(fs *flag.FlagSet) func(io.Writer, io.Writer) int {
		fs.Int("workers", 4, "how many `N` index at once")
		fs.Bool("dry-run", false, "only say what would change")
		return func(io.Writer, io.Writer) int { return 0 }
	}}
	var out bytes.Buffer
	if code := printHelp(&out, append(subcommands(), added)); code != 0 {
		t.Fatalf("printHelp returned %d", code)
	}
	heads, under := helpSections(t, out.String())
	last := len(heads) - 1
	if last < 0 || !strings.HasPrefix(heads[last], "service reindex [flags]") || len(under[last]) != 2 {
		t.Fatalf("the added subcommand is not the last one listed with its two flags:\n%s", &out)
	}
	if want := "-dry-run"; !strings.HasPrefix(under[last][0], want+" ") {
		t.Errorf("first flag line %q, want %s", under[last][0], want)
	}
	if want := "-workers N"; !strings.HasPrefix(under[last][1], want+" ") || !strings.HasSuffix(under[last][1], "how many N index at once (default 4)") {
		t.Errorf("second flag line %q, want %q, its usage and its default", under[last][1], want)
	}
}

func TestSubcommandHelp(t *testing.T) {
	for _, cmd := range subcommands() {
		if cmd.name == "" {
			continue // service -h is the whole help
		}
		t.Run(cmd.name, func(t *testing.T) {
			code, stdout, stderr := runInProcess(cmd.name, "-h")
			if code != 0 || stderr != "" {
				t.Fatalf("service %s -h: exit status %d, stderr %q; want 0 and nothing", cmd.name, code, stderr)
			}
			if !strings.HasPrefix(stdout, "Usage: service "+cmd.name) || !strings.Contains(stdout, cmd.summary) || !strings.Contains(stdout, cmd.details) {
				t.Errorf("service %s -h does not show its usage line, summary and details:\n%s", cmd.name, stdout)
			}
			_, list, _ := strings.Cut(stdout, "\nFlags:\n")
			lines := strings.Split(strings.TrimSuffix(list, "\n"), "\n")
			if list == "" {
				lines = nil
			}
			flags := definedFlags(cmd)
			if len(lines) != len(flags) {
				t.Fatalf("service %s -h lists %d flags, its flag set has %d:\n%s", cmd.name, len(lines), len(flags), stdout)
			}
			for i, f := range flags {
				checkFlagLine(t, "service "+cmd.name+" -h", lines[i], f)
			}
		})
	}
}

// An unknown subcommand (a typo) prints the help to stderr and exits 2, and
// starts nothing: with the API's address taken, a server that tried to start
// would fail on it and say so.
func TestUnknownSubcommandStartsNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = taken.Close() })
	t.Setenv("SERVICE_HTTP_ADDR", taken.Addr().String())
	t.Setenv("SERVICE_ADMIN_ADDR", "127.0.0.1:0")
	_, help, _ := runInProcess("help")

	for _, args := range [][]string{{"devcert"}, {"serve"}, {"HELP"}, {""}, {"devcert", "-dir", "x"}} {
		code, stdout, stderr := runInProcess(args...)
		want := `service: unknown subcommand "` + args[0] + `"` + "\n\n" + help
		if code != 2 || stdout != "" || stderr != want {
			t.Errorf("service %q: exit status %d, stdout %q, stderr:\n%s\nwant 2, nothing, and:\n%s", args, code, stdout, stderr, want)
		}
	}
	if _, err := os.Stat("x"); err == nil {
		t.Error("service devcert -dir x wrote ./x")
	}
}

func TestBadFlagsExit2WithTheUsage(t *testing.T) {
	byName := map[string]subcommand{}
	for _, cmd := range subcommands() {
		byName[cmd.name] = cmd
	}
	for _, tt := range []struct {
		args    []string
		command string // the subcommand's name in the table
		message string // the first line
	}{
		{[]string{"-bogus"}, "", "flag provided but not defined: -bogus"},
		{[]string{"-config"}, "", "flag needs an argument: -config"},
		{[]string{"-config", "service.yaml", "extra"}, "", "service: unexpected argument extra"},
		{[]string{"healthcheck", "-bogus"}, "healthcheck", "flag provided but not defined: -bogus"},
		{[]string{"version", "extra"}, "version", "version: unexpected argument extra"},
		{[]string{"help", "devcerts"}, "help", "help: unexpected argument devcerts"},
		{[]string{"devtoken", "-ttl", "soon"}, "devtoken", `invalid value "soon" for flag -ttl: parse error`},
		{[]string{"devcerts", "-force=maybe"}, "devcerts", `invalid boolean value "maybe" for -force: parse error`},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runInProcess(tt.args...)
			if code != 2 || stdout != "" {
				t.Errorf("exit status %d, stdout %q; want 2 and nothing", code, stdout)
			}
			if first, _, _ := strings.Cut(stderr, "\n"); first != tt.message {
				t.Errorf("stderr starts %q, want %q", first, tt.message)
			}
			cmd := byName[tt.command]
			if want := "\nUsage: service " + cmd.name; !strings.Contains(stderr, strings.TrimSpace(want)) {
				t.Errorf("stderr does not show the usage %q:\n%s", want, stderr)
			}
			for _, f := range definedFlags(cmd) {
				if !strings.Contains(stderr, "\n  -"+f.Name+" ") {
					t.Errorf("stderr does not list -%s:\n%s", f.Name, stderr)
				}
			}
		})
	}
}

// README's Subcommands section, which users read, names every subcommand of
// the table.
func TestReadmeNamesEverySubcommand(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, found := strings.Cut(string(data), "\n## Subcommands\n")
	if !found {
		t.Fatal("README.md has no section ## Subcommands")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for _, cmd := range subcommands() {
		if cmd.name != "" && !strings.Contains(section, "service "+cmd.name) {
			t.Errorf("README.md's Subcommands section does not show `service %s` (%s)", cmd.name, cmd.summary)
		}
	}
}
