package main

import (
	"net"
	"path/filepath"

	"github.com/shardline/shardline/storage/clusterdir"
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
func readTokenFile(path string) (string, error) { return clusterdir.ReadSecret(path, "admin token") }

// clusterToken returns the token kept in dir's admin.token, and first
// generates it (adminTokenBytes as hex, mode 0600) when the file does not
// exist (clusterdir.Secret).
func clusterToken(dir string) (string, error) {
	return clusterdir.Secret(filepath.Join(dir, adminTokenName), "admin token", adminTokenBytes)
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
