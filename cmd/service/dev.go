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

// devcertsDetails is what `service devcerts -h` says beyond the summary.
const devcertsDetails = `Writes a development CA (ca.pem), a server certificate for localhost,
127.0.0.1 and ::1 (server.pem, server-key.pem) and a client certificate
with the SPIFFE ID spiffe://TD/client (client.pem, client-key.pem).`

// devcertsCommand writes a development CA, server and client certificate
// set (see devpki.DevSet) and prints how to run the service with it and call
// it with curl. Exit status: 0 written, 1 not written (files exist without
// -force, or a write failed), 2 bad flags.
func devcertsCommand(flags *flag.FlagSet) func(stdout, stderr io.Writer) int {
	dir := flags.String("dir", "dev-certs", "write the files into `DIR`, created if missing")
	trustDomain := flags.String("trust-domain", "example.org", "the SPIFFE trust domain `TD` of the client certificate's ID")
	force := flags.Bool("force", false, "replace files that already exist")
	return func(stdout, stderr io.Writer) int {
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
}

// devtokenDetails is what `service devtoken -h` says beyond the summary.
//
//nolint:gosec // G101: help text that names the secret's variable, no secret
const devtokenDetails = `Signs it with the secret the service has in SERVICE_AUTH_HMAC_SECRET; give
exactly one of -secret-env and -secret. For example:
  TOKEN=$(service devtoken -secret-env SERVICE_AUTH_HMAC_SECRET)
  curl -H "Authorization: Bearer $TOKEN" http://localhost:8080/v1/hello`

// devtokenCommand prints an HS256 bearer token for local development, and
// nothing else on stdout, so that TOKEN=$(service devtoken ...) works. Exit
// status: 0 printed, 1 the secret's variable is empty, 2 bad flags.
func devtokenCommand(flags *flag.FlagSet) func(stdout, stderr io.Writer) int {
	secret := flags.String("secret", "", "the HMAC `SECRET` (shows in ps and shell history: prefer -secret-env)")
	secretEnv := flags.String("secret-env", "", "the environment `VARIABLE` that holds the HMAC secret")
	subject := flags.String("sub", "alice", "the token's sub claim, its `SUBJECT`")
	issuer := flags.String("iss", "", "the token's iss claim, its `ISSUER`; none when empty")
	audience := flags.String("aud", "", "the token's aud claim, its `AUDIENCE`; none when empty")
	ttl := flags.Duration("ttl", time.Hour, "how long the token is valid: exp is now plus `DURATION`")
	return func(stdout, stderr io.Writer) int {
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
}

// usageError prints "name: msg" and the subcommand's usage on stderr, and
// returns exit status 2.
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
