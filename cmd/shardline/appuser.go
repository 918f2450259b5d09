package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/auth"
	"github.com/shardline/shardline/storage/clusterdir"
	"github.com/shardline/shardline/storage/etcdstore"
)

// The application user `shardline up` creates: an app user bound to no
// tenant (sessions name theirs), with a random password kept in the
// cluster directory so the printed connection string works as is.
const (
	appUserName     = "app"
	appPasswordName = "app.password"
	appPasswordLen  = 16 // random bytes, hex in the file: safe in a URL unescaped
)

// ensureAppUser makes sure the cluster has its application user and
// returns the password and the file it is in. On the first run it writes
// DIR/app.password (mode 0600) before it adds the user; later runs keep
// both. A user whose password file is gone gets a new password; a file
// whose user is gone gets the user again. A password changed with
// 'shardline user passwd app' is kept, with a warning that the file no
// longer matches.
func ensureAppUser(ctx context.Context, store *etcdstore.Store, dir string, log *slog.Logger) (password, file string, err error) {
	file = filepath.Join(dir, appPasswordName)
	password, err = readPasswordFile(file)
	fileMissing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !fileMissing {
		return "", "", &exitError{code: 1, msg: fmt.Sprintf("%v (the cluster directory keeps the app user's password in %s; remove the file for a new one)", err, appPasswordName)}
	}
	if fileMissing {
		password = clusterdir.RandomHex(appPasswordLen)
		if err := clusterdir.WriteSecret(file, password); err != nil {
			return "", "", err
		}
	}
	u, err := store.GetUser(ctx, appUserName)
	switch {
	case errors.Is(err, shardline.ErrUserNotFound):
		v, err := auth.NewVerifier(password, 0)
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", file, err)
		}
		if _, err := store.AddUser(ctx, shardline.User{Name: appUserName, Kind: shardline.UserApp, Verifier: v.String()}); err != nil {
			return "", "", fmt.Errorf("create the app user: %w", err)
		}
		log.Info("created the application user", "user", appUserName, "password_file", file)
	case err != nil:
		return "", "", fmt.Errorf("read the app user: %w", err)
	case fileMissing:
		v, err := auth.NewVerifier(password, 0)
		if err != nil {
			return "", "", err
		}
		if _, err := store.SetUserVerifier(ctx, appUserName, v.String()); err != nil {
			return "", "", fmt.Errorf("set the app user's password: %w", err)
		}
		log.Warn("the app user's password file was missing: the user has a new password", "user", appUserName, "password_file", file)
	default:
		if v, err := auth.ParseVerifier(u.Verifier); err != nil || !v.Check(password) {
			log.Warn("the app user's password is no longer the one in its file (changed with 'shardline user passwd app'?): the printed connection string will not log in",
				"user", appUserName, "password_file", file)
		}
	}
	return password, file, nil
}

// readPasswordFile reads a password of one line (without its line end).
func readPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if err := auth.ValidatePassword(pw); err != nil {
		return "", fmt.Errorf("password file %s: %w", path, err)
	}
	return pw, nil
}
