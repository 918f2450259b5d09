package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// adminTokenName is the file in a cluster directory that holds the admin
// API's token, which `shardline up` generates on its first run.
const adminTokenName = "admin.token"

// adminTokenBytes is how much randomness a generated token has (it is
// written as twice as many hex digits).
const adminTokenBytes = 32

// readTokenFile returns the token in the file at path: its content
// without surrounding whitespace. An unreadable file, an empty one, or one
// whose token holds a space or a control byte is an error saying which.
func readTokenFile(path string) (string, error) { return readSecretFile(path, "admin token") }

// readSecretFile reads what, a token of one line, from path.
func readSecretFile(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("%s file %s is empty", what, path)
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c == 0x7f {
			return "", fmt.Errorf("%s file %s: byte %d of the token is a space or a control character; the file holds one token on one line", what, path, i)
		}
	}
	return token, nil
}

// clusterToken returns the token kept in dir's admin.token, and first
// generates it (crypto/rand, adminTokenBytes as hex, mode 0600) when the
// file does not exist. The caller holds dir's lock, so no other process
// generates one at the same time; the file appears whole or not at all.
func clusterToken(dir string) (string, error) {
	path := filepath.Join(dir, adminTokenName)
	token, err := readTokenFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return token, err
	}
	raw := make([]byte, adminTokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generate admin token: %w", err)
	}
	token = hex.EncodeToString(raw)
	tmp, err := os.CreateTemp(dir, "."+adminTokenName+"-*") // mode 0600
	if err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing to remove
	if _, err := tmp.WriteString(token + "\n"); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write admin token: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write admin token: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	return token, nil
}

// requireAdminToken reports whether the admin API bound at addr must
// require its token: when addr is not loopback. Not loopback and no token
// is an error, exit status 2: the API would be open to the network.
func requireAdminToken(addr net.Addr, token string) (bool, error) {
	if isLoopback(addr) {
		return false, nil
	}
	if token == "" {
		return true, usageErr("--admin %s is not a loopback address and there is no admin token: give one with --admin-token-file, or bind the admin API to 127.0.0.1", addr)
	}
	return true, nil
}
