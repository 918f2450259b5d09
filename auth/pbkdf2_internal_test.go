package auth

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"testing"
)

func pbkdf2Key(t testing.TB, password string, salt []byte, iter int) []byte {
	t.Helper()
	k, err := pbkdf2.Key(sha256.New, password, salt, iter, keyLen)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
