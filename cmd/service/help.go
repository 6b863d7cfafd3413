package main

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// The help is made from the table subcommands() and from the flag sets its
// setup functions define, so that a subcommand or a flag added there shows
// up here with nothing else to edit.

// printHelp writes `service help`: every subcommand with its summary and,
// under it, its flags, one line each. It returns the exit status of
// `service help`: 0, or 1 when w cannot be written.
func printHelp(w io.Writer, cmds []subcommand) int {
	var b strings.Builder
	b.WriteString("Usage: service [SUBCOMMAND] [flags]\n\n")
	table := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	for _, cmd := range cmds {
		flags, _ := flagSet(cmd)
		_, _ = fmt.Fprintf(table, "  %s\t%s\n", commandLine(cmd, flags), cmd.summary)
		for _, line := range flagLines(flags) {
			_, _ = fmt.Fprintf(table, "      %s\n", line)
		}
	}
	_ = table.Flush() // a strings.Builder does not fail
	b.WriteString("\n`service SUBCOMMAND -h` shows one subcommand's usage. The settings, in the\n" +
		"environment or a YAML file: docs/CONFIGURATION.md and configs/service.yaml.\n")
	return write(w, b.String())
}

// printUsage writes `service NAME -h`: the subcommand's command line, its
// summary and details, and its flags. It returns 0, or 1 when w cannot be
// written.
func printUsage(w io.Writer, cmd subcommand, flags *flag.FlagSet) int {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n\n%s\n", commandLine(cmd, flags), cmd.summary)
	if cmd.details != "" {
		fmt.Fprintf(&b, "\n%s\n", cmd.details)
	}
	if lines := flagLines(flags); len(lines) > 0 {
		b.WriteString("\nFlags:\n")
		table := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
		for _, line := range lines {
			_, _ = fmt.Fprintf(table, "  %s\n", line)
		}
		_ = table.Flush() // a strings.Builder does not fail
	}
	return write(w, b.String())
}

// flagSet is cmd's flag set, defined by its setup function, and the
// function that runs cmd once the flags are parsed. The help calls it only
// to read the flags back.
func flagSet(cmd subcommand) (*flag.FlagSet, func(stdout, stderr io.Writer) int) {
	flags := flag.NewFlagSet(cmp.Or(cmd.name, "service"), flag.ContinueOnError)
	return flags, cmd.setup(flags)
}

// commandLine is how cmd is typed: "service devcerts [flags]".
func commandLine(cmd subcommand, flags *flag.FlagSet) string {
	line := strings.TrimSpace("service " + cmd.name)
	hasFlags := false
	flags.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		line += " [flags]"
	}
	return line
}

// flagLines describes each flag of flags in one line, sorted by name, with a
// tab between "-name PLACEHOLDER" and the usage: the placeholder is the
// usage's `quoted` word (flag.UnquoteUsage), and a default that is not the
// zero value follows the usage, as flag.PrintDefaults writes them.
func flagLines(flags *flag.FlagSet) []string {
	var lines []string
	flags.VisitAll(func(f *flag.Flag) {
		placeholder, usage := flag.UnquoteUsage(f)
		line := strings.TrimSpace("-"+f.Name+" "+placeholder) + "\t" + usage
		switch def := f.DefValue; {
		case def == "" || def == "false" || def == "0" || def == "0s":
		case isString(f):
			line += fmt.Sprintf(" (default %q)", def)
		default:
			line += fmt.Sprintf(" (default %s)", def)
		}
		lines = append(lines, line)
	})
	return lines
}

// isString reports whether f holds a string, whose default is quoted.
func isString(f *flag.Flag) bool {
	getter, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, ok = getter.Get().(string)
	return ok
}

// write writes s to w: 0, or 1 when w fails (a closed pipe).
func write(w io.Writer, s string) int {
	if _, err := io.WriteString(w, s); err != nil {
		return 1
	}
	return 0
}
