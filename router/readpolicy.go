package router

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// target is the session's shardline.target.
type target uint8

const (
	targetPrimary target = iota // never a replica
	targetReplica               // read-only transactions may use replicas
	targetAuto                  // also autocommit SELECTs without locking clauses
)

func parseTarget(s string) (target, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "primary":
		return targetPrimary, nil
	case "replica":
		return targetReplica, nil
	case "auto":
		return targetAuto, nil
	}
	return 0, fmt.Errorf("shardline.target %q: want primary, replica or auto", s)
}

func (t target) String() string {
	switch t {
	case targetReplica:
		return "replica"
	case targetAuto:
		return "auto"
	}
	return "primary"
}

// lagBound is shardline.max_lag: a duration, or a number of WAL bytes.
type lagBound struct {
	dur   time.Duration
	bytes int64 // > 0: the bound is in bytes
	text  string
}

// parseLagBound parses "500ms", "1s", "1min" (Go or PostgreSQL units; a bare
// number is milliseconds, as in PostgreSQL) or "16MB", "512kB", "1024B".
func parseLagBound(s string) (lagBound, error) {
	v := strings.TrimSpace(s)
	if v == "" {
		return lagBound{}, fmt.Errorf("shardline.max_lag %q: %w", s, errLagBound)
	}
	i := 0
	for i < len(v) && (v[i] >= '0' && v[i] <= '9' || v[i] == '.') {
		i++
	}
	num, unit := v[:i], strings.TrimSpace(v[i:])
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || f > 1e15 {
		return lagBound{}, fmt.Errorf("shardline.max_lag %q: %w", s, errLagBound)
	}
	sizes := map[string]float64{"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}
	if m, ok := sizes[strings.ToLower(unit)]; ok {
		return lagBound{bytes: max(int64(f*m), 1), text: v}, nil
	}
	times := map[string]time.Duration{"": time.Millisecond, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "min": time.Minute, "m": time.Minute, "h": time.Hour}
	if m, ok := times[strings.ToLower(unit)]; ok {
		return lagBound{dur: time.Duration(f * float64(m)), text: v}, nil
	}
	return lagBound{}, fmt.Errorf("shardline.max_lag %q: unknown unit %q: %w", s, unit, errLagBound)
}

// parseWait parses shardline.max_wait, a duration as in parseLagBound.
func parseWait(s string) (time.Duration, error) {
	b, err := parseLagBound(s)
	if err != nil || b.bytes > 0 {
		return 0, fmt.Errorf("shardline.max_wait %q: want a duration such as 100ms", s)
	}
	return b.dur, nil
}

// isPlainSelect reports whether q is one SELECT that takes no row locks and
// calls no sequence function, which shardline.target=auto sends to a
// replica. Functions that write are not detected: see the README.
func isPlainSelect(q []byte) bool {
	w := words{q: q}
	switch w.next().text {
	case "select":
	case "with":
		for _, kw := range []string{"insert", "update", "delete", "merge"} {
			if indexFold(q, kw) >= 0 {
				return false
			}
		}
	default:
		return false
	}
	if isMulti(q) {
		return false
	}
	for _, kw := range []string{"for update", "for share", "for no key", "for key share", "nextval", "setval", "into "} {
		if indexFold(q, kw) >= 0 {
			return false
		}
	}
	return true
}

// beginReadOnly reads BEGIN/START TRANSACTION's access mode: explicit is
// false when the statement names none.
func beginReadOnly(q []byte) (readOnly, explicit bool) {
	w := words{q: q}
	for t := w.next(); t.kind != tokEOF; t = w.next() {
		if t.text == "read" {
			switch w.next().text {
			case "only":
				return true, true
			case "write":
				return false, true
			}
		}
	}
	return false, false
}

// isWriteTag reports whether a CommandComplete tag means the transaction
// may have written (reads, transaction control and settings do not).
func isWriteTag(tag []byte) bool {
	end := 0
	for end < len(tag) && tag[end] != ' ' && tag[end] != 0 {
		end++
	}
	switch string(tag[:end]) {
	case "SELECT", "SHOW", "BEGIN", "START", "COMMIT", "ROLLBACK", "SET", "RESET", "FETCH", "MOVE",
		"DECLARE", "CLOSE", "DISCARD", "DEALLOCATE", "PREPARE", "LISTEN", "UNLISTEN", "EXPLAIN",
		"SAVEPOINT", "RELEASE", "COPY":
		// COPY TO is a read; COPY FROM is seen as CopyInResponse.
		return false
	}
	return true
}

// truthy reads a boolean setting value as PostgreSQL does.
func truthy(v string) bool {
	switch strings.ToLower(strings.Trim(strings.TrimSpace(v), "'")) {
	case "on", "true", "yes", "1", "t", "y":
		return true
	}
	return false
}
