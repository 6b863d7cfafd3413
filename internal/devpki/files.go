package devpki

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/meshkit/meshkit/internal/buildinfo"
)

// ErrInvalidTrustDomain is returned (wrapped) by [DevSet] for a trust domain
// that is not a SPIFFE trust domain name.
var ErrInvalidTrustDomain = errors.New("invalid SPIFFE trust domain")

// File modes [WriteFiles] and [DevSet] use.
const (
	KeyFileMode  fs.FileMode = 0o600 // a file holding a private key
	CertFileMode fs.FileMode = 0o644 // any other file: certificates, bundles
	dirMode      fs.FileMode = 0o755
)

// WriteFile replaces the file at path with data, atomically: it writes a
// temporary file in the same directory, syncs it, sets its mode to perm
// (whatever the umask) and renames it over path. A reader, or a watcher
// reloading on change, sees either the old contents or the new ones, never a
// mix; one that holds the old file open keeps reading the old contents. The
// directory must exist. On error path is unchanged and the temporary file
// is removed.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	if err := replaceFile(path, data, perm); err != nil {
		return fmt.Errorf("devpki: write %s: %w", path, err)
	}
	return nil
}

// replaceFile is WriteFile without the error's context.
func replaceFile(path string, data []byte, perm fs.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close() // a second Close after a failed one is harmless
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// WriteFiles writes files (file name -> contents) into dir, creating dir
// (0755) if needed, each with [WriteFile]: a file whose contents mention
// "PRIVATE KEY" gets [KeyFileMode], any other [CertFileMode]. Names must be
// plain file names, not paths. Each file is replaced atomically but the set
// is not: files are written in name order, so a reader may briefly see a new
// certificate next to an old key. The first error stops it; files written
// before it stay.
func WriteFiles(dir string, files map[string][]byte) error {
	names := make([]string, 0, len(files))
	for name := range files {
		if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
			return fmt.Errorf("devpki: write files: %q is not a plain file name", name)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("devpki: write files: %w", err)
	}
	for _, name := range names {
		data := files[name]
		perm := CertFileMode
		if bytes.Contains(data, []byte("PRIVATE KEY")) {
			perm = KeyFileMode
		}
		if err := WriteFile(filepath.Join(dir, name), data, perm); err != nil {
			return err
		}
	}
	return nil
}

// DevFiles are the paths [DevSet] wrote, each dir joined with a fixed name.
type DevFiles struct {
	// CA is ca.pem, the CA certificate both sides trust
	// (SERVICE_TLS_CLIENT_CA_FILE on the server, --cacert for curl).
	CA string
	// ServerCert and ServerKey are server.pem and server-key.pem: a server
	// certificate for localhost, 127.0.0.1 and ::1.
	ServerCert, ServerKey string
	// ClientCert and ClientKey are client.pem and client-key.pem: a client
	// certificate whose one URI SAN is ClientID.
	ClientCert, ClientKey string
	// ClientID is the client's SPIFFE ID, spiffe://<trust domain>/client.
	ClientID string
}

// DevSet writes a complete development set into dir (created if missing):
// a new CA, a server certificate and a client certificate, see [DevFiles].
// The CA's key is not written, so no more certificates can be made from it;
// run DevSet again for a new set. trustDomain is the client's SPIFFE trust
// domain, e.g. "example.org"; an invalid one wraps [ErrInvalidTrustDomain].
// Unless overwrite is set, DevSet writes nothing when any of the five files
// exists, and returns an error wrapping fs.ErrExist that names them. The
// check is not atomic against another writer of the same directory.
func DevSet(dir, trustDomain string, overwrite bool) (*DevFiles, error) {
	if err := checkTrustDomain(trustDomain); err != nil {
		return nil, fmt.Errorf("devpki: dev set: %w", err)
	}
	files := &DevFiles{
		CA:         filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
		ClientID:   "spiffe://" + trustDomain + "/client",
	}
	paths := []string{files.CA, files.ServerCert, files.ServerKey, files.ClientCert, files.ClientKey}
	if !overwrite {
		if err := refuseExisting(paths); err != nil {
			return nil, fmt.Errorf("devpki: dev set: %w", err)
		}
	}

	ca, err := NewCA(buildinfo.Name + " development CA (" + trustDomain + ")")
	if err != nil {
		return nil, err
	}
	server, err := ca.Issue(
		DNSNames("localhost"),
		IPAddresses(net.IPv4(127, 0, 0, 1), net.IPv6loopback),
		ServerAuth(),
	)
	if err != nil {
		return nil, err
	}
	client, err := ca.Issue(CommonName("client"), URIs(files.ClientID), ClientAuth())
	if err != nil {
		return nil, err
	}
	contents := map[string][]byte{
		filepath.Base(files.CA):         ca.PEM(),
		filepath.Base(files.ServerCert): server.CertPEM,
		filepath.Base(files.ServerKey):  server.KeyPEM,
		filepath.Base(files.ClientCert): client.CertPEM,
		filepath.Base(files.ClientKey):  client.KeyPEM,
	}
	if err := WriteFiles(dir, contents); err != nil {
		return nil, err
	}
	return files, nil
}

// refuseExisting returns an error wrapping fs.ErrExist naming those of paths
// that exist, nil when none does.
func refuseExisting(paths []string) error {
	var existing []string
	for _, p := range paths {
		_, err := os.Lstat(p)
		switch {
		case err == nil:
			existing = append(existing, p)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	if len(existing) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", strings.Join(existing, ", "), fs.ErrExist)
}

// checkTrustDomain checks a SPIFFE trust domain name: 1 to 255 characters,
// lower-case letters, digits, '.', '-' and '_'.
func checkTrustDomain(td string) error {
	if td == "" || len(td) > 255 {
		return fmt.Errorf("%q: %w: must be 1 to 255 characters", td, ErrInvalidTrustDomain)
	}
	for _, r := range td {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '.' && r != '-' && r != '_' {
			return fmt.Errorf("%q: %w: only lower-case letters, digits, '.', '-' and '_' are allowed", td, ErrInvalidTrustDomain)
		}
	}
	return nil
}
