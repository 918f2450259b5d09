package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

func runDrillFor(t *testing.T, info upInfo, d time.Duration) (string, error) {
	t.Helper()
	var out bytes.Buffer
	c := &drillCommand{
		Client: api.NewClient(info.AdminURL, nil), RouterDSN: info.RouterDSN,
		Duration: d, Workers: 2, MaxLag: 500 * time.Millisecond, Stdout: &out, Stderr: &bytes.Buffer{},
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	err := c.Run(ctx)
	return out.String(), err
}

// TestDrillReplicaLag runs the drill briefly against a real cluster: no
// stale read, no missed write.
func TestDrillReplicaLag(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	info, _ := startUp(t, pgtest.Dir(t), 2, 1)
	out, err := runDrillFor(t, info, 4*time.Second)
	t.Log(out)
	if err != nil {
		t.Fatalf("drill: %v", err)
	}
	if !strings.Contains(out, "stale reads               0") || !strings.Contains(out, "read-your-writes misses   0") {
		t.Fatalf("drill report:\n%s", out)
	}
}

// TestDrillCatchesMissingTokens is the drill's negative control: with
// read-your-writes tokens turned off in the router, it must report misses
// and fail.
func TestDrillCatchesMissingTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	info, _ := startUpWith(t, pgtest.Dir(t), 1, 1, func(c *upCommand) { c.NoWriteTokens = true })
	out, err := runDrillFor(t, info, 4*time.Second)
	t.Log(out)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(ee.msg, "read-your-writes miss") {
		t.Fatalf("drill without tokens: err %v, want a read-your-writes violation", err)
	}
}
