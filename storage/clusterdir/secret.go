package clusterdir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Secrets of a cluster directory (the admin token, the app user's password,
// the shards' binding token) are one line each, in files of mode 0600.

// ReadSecret returns the secret in path without surrounding white space.
// what names it in errors; a missing file wraps fs.ErrNotExist, and an
// empty one, or one whose secret holds a space or a control byte, is an
// error saying which.
func ReadSecret(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s file %s is empty", what, path)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return "", fmt.Errorf("%s file %s: byte %d of the token is a space or a control character; the file holds one token on one line", what, path, i)
		}
	}
	return s, nil
}

// RandomHex returns n random bytes (crypto/rand) as hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// WriteSecret writes s and a newline to path, mode 0600, whole or not at
// all (a temporary file renamed into place). The caller holds the
// directory's lock, so no other process writes it at the same time.
func WriteSecret(path, s string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*") // mode 0600
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing to remove
	_, err = tmp.WriteString(s + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Secret returns the secret in path (ReadSecret), first generating one of
// n random bytes as hex (RandomHex, WriteSecret) when the file does not
// exist.
func Secret(path, what string, n int) (string, error) {
	s, err := ReadSecret(path, what)
	if !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	s = RandomHex(n)
	if err := WriteSecret(path, s); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return s, nil
}
