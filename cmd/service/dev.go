package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshkit/meshkit/internal/devpki"
)

// devcerts writes a development CA, server and client certificate set (see
// devpki.DevSet) and prints how to run the service with it and call it with
// curl. Exit status: 0 written, 1 not written (files exist without -force,
// or a write failed), 2 bad flags.
func devcerts(args []string, stdout, stderr io.Writer) int {
	flags := newFlagSet("devcerts", "[-dir DIR] [-trust-domain TD] [-force]",
		"Writes a development CA (ca.pem), a server certificate for localhost,\n"+
			"127.0.0.1 and ::1 (server.pem, server-key.pem) and a client certificate\n"+
			"with the SPIFFE ID spiffe://TD/client (client.pem, client-key.pem).", stderr)
	dir := flags.String("dir", "dev-certs", "directory to write the files into, created if missing")
	trustDomain := flags.String("trust-domain", "example.org", "SPIFFE trust domain of the client's ID")
	force := flags.Bool("force", false, "replace files that already exist")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}

	absDir, err := filepath.Abs(*dir)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "devcerts:", err)
		return 1
	}
	files, err := devpki.DevSet(absDir, *trustDomain, *force)
	switch {
	case errors.Is(err, devpki.ErrInvalidTrustDomain):
		return usageError(flags, "-trust-domain: "+err.Error())
	case errors.Is(err, fs.ErrExist):
		_, _ = fmt.Fprintf(stderr, "devcerts: %v; run with -force to replace them\n", err)
		return 1
	case err != nil:
		_, _ = fmt.Fprintln(stderr, "devcerts:", err)
		return 1
	}

	var b strings.Builder
	for _, path := range []string{files.CA, files.ServerCert, files.ServerKey, files.ClientCert, files.ClientKey} {
		fmt.Fprintln(&b, "wrote", path)
	}
	fmt.Fprintf(&b, `
# Run the service with mutual TLS, admitting the whole trust domain:
export SERVICE_TLS_CERT_FILE=%s
export SERVICE_TLS_KEY_FILE=%s
export SERVICE_TLS_CLIENT_CA_FILE=%s
export SERVICE_TLS_ALLOWED_SPIFFE_IDS=spiffe://%s

# Call it as %s:
curl --cacert %s --cert %s --key %s https://localhost:8080/v1/hello
`,
		shellQuote(files.ServerCert), shellQuote(files.ServerKey), shellQuote(files.CA), *trustDomain,
		files.ClientID, shellQuote(files.CA), shellQuote(files.ClientCert), shellQuote(files.ClientKey))
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		_, _ = fmt.Fprintln(stderr, "devcerts:", err)
		return 1
	}
	return 0
}

// devtoken prints an HS256 bearer token for local development, and nothing
// else on stdout, so that TOKEN=$(service devtoken ...) works. Exit status:
// 0 printed, 1 the secret's variable is empty, 2 bad flags.
func devtoken(args []string, stdout, stderr io.Writer) int {
	flags := newFlagSet("devtoken", "-secret-env VAR | -secret SECRET [-sub S] [-iss I] [-aud A] [-ttl D]",
		"Prints an HS256 token signed with the secret the service has in\n"+
			"SERVICE_AUTH_HMAC_SECRET, e.g.\n"+
			"  TOKEN=$(service devtoken -secret-env SERVICE_AUTH_HMAC_SECRET)\n"+
			"  curl -H \"Authorization: Bearer $TOKEN\" http://localhost:8080/v1/hello", stderr)
	secret := flags.String("secret", "", "the HMAC secret (shows in ps and shell history: prefer -secret-env)")
	secretEnv := flags.String("secret-env", "", "name of the environment variable holding the HMAC secret")
	subject := flags.String("sub", "alice", "subject (sub claim)")
	issuer := flags.String("iss", "", "issuer (iss claim), none when empty")
	audience := flags.String("aud", "", "audience (aud claim), none when empty")
	ttl := flags.Duration("ttl", time.Hour, "lifetime: exp is now plus ttl")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}

	set := map[string]bool{}
	flags.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case set["secret"] == set["secret-env"]:
		return usageError(flags, "give exactly one of -secret and -secret-env")
	case set["secret"] && *secret == "":
		return usageError(flags, "-secret is empty")
	case set["secret-env"] && *secretEnv == "":
		return usageError(flags, "-secret-env is empty")
	case *subject == "":
		return usageError(flags, "-sub is empty")
	case *ttl < time.Second:
		return usageError(flags, fmt.Sprintf("-ttl %s: must be at least 1s", *ttl))
	}
	key := *secret
	if set["secret-env"] {
		if key = os.Getenv(*secretEnv); key == "" {
			_, _ = fmt.Fprintf(stderr, "devtoken: the environment variable %s is empty or not set\n", *secretEnv)
			return 1
		}
	}

	token, err := devpki.DevToken([]byte(key), *subject, *issuer, *audience, *ttl)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "devtoken:", err)
		return 1
	}
	if _, err := fmt.Fprintln(stdout, token); err != nil {
		_, _ = fmt.Fprintln(stderr, "devtoken:", err)
		return 1
	}
	return 0
}

// newFlagSet is a flag set for `service name` whose usage, on stderr, is
// "Usage: service name synopsis", the description and the flags.
func newFlagSet(name, synopsis, description string, stderr io.Writer) *flag.FlagSet {
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		_, _ = fmt.Fprintf(stderr, "Usage: service %s %s\n\n%s\n\nFlags:\n", name, synopsis, description)
		flags.PrintDefaults()
	}
	return flags
}

// parseFlags parses args; ok is false when the command must stop with code:
// 0 for -h, 2 for a bad flag or a stray argument (the usage is printed).
func parseFlags(flags *flag.FlagSet, args []string) (code int, ok bool) {
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if flags.NArg() > 0 {
		return usageError(flags, "unexpected argument "+flags.Arg(0)), false
	}
	return 0, true
}

// usageError prints "name: msg" and the usage, and returns exit status 2.
func usageError(flags *flag.FlagSet, msg string) int {
	_, _ = fmt.Fprintf(flags.Output(), "%s: %s\n", flags.Name(), msg)
	flags.Usage()
	return 2
}

// shellQuote returns s as one POSIX shell word: unchanged when it holds only
// characters the shell leaves alone, else in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/:@+=%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
