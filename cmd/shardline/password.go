package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/shardline/shardline/auth"
	"golang.org/x/sys/unix"
)

// passwordSource is where `shardline user add|passwd` reads a password:
// a file, one line of standard input, or a prompt on the terminal.
type passwordSource struct {
	file  string // --password-file
	stdin bool   // --password-stdin
}

// read returns the password. Without a flag it prompts twice on the
// terminal (without echo) when standard input is one; otherwise it is a
// usage error saying which flag to give. A password that cannot be used
// is exit status 1 naming why.
func (p passwordSource) read(env *cliEnv) (string, error) {
	var pw string
	switch {
	case p.file != "" && p.stdin:
		return "", usageErr("give one of --password-file and --password-stdin")
	case p.file != "":
		b, err := os.ReadFile(p.file)
		if err != nil {
			return "", &exitError{code: 1, msg: fmt.Sprintf("--password-file: %v", err)}
		}
		pw, _, _ = strings.Cut(string(b), "\n")
		pw = strings.TrimSuffix(pw, "\r")
	case p.stdin:
		if env.Stdin == nil {
			return "", usageErr("--password-stdin: no standard input")
		}
		line, err := bufio.NewReader(env.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", &exitError{code: 1, msg: fmt.Sprintf("--password-stdin: %v", err)}
		}
		pw = strings.TrimRight(line, "\r\n")
	default:
		f, ok := env.Stdin.(*os.File)
		if !ok || !isTerminal(f) {
			return "", usageErr("no terminal to prompt for the password on: give --password-file FILE or --password-stdin")
		}
		first, err := promptNoEcho(f, env.Stderr, "Password: ")
		if err != nil {
			return "", err
		}
		again, err := promptNoEcho(f, env.Stderr, "Password again: ")
		if err != nil {
			return "", err
		}
		if first != again {
			return "", &exitError{code: 1, msg: "the passwords differ; run the command again"}
		}
		pw = first
	}
	if err := auth.ValidatePassword(pw); err != nil {
		return "", &exitError{code: 1, msg: strings.TrimPrefix(err.Error(), "auth: ")}
	}
	return pw, nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// promptNoEcho writes prompt to w and reads one line from the terminal f
// with echo off, restoring the terminal's settings after.
func promptNoEcho(f *os.File, w io.Writer, prompt string) (string, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", err
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprint(w, prompt)
	line, err := bufio.NewReader(f).ReadString('\n')
	fmt.Fprintln(w)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
