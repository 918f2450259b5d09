package etcdstore

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zapcore"
)

// Dial connects to etcd at endpoints and checks that it answers within 10 s
// (or before ctx ends). The client logs warnings and errors to logger (nil discards them).
// The caller closes the client.
func Dial(ctx context.Context, endpoints []string, logger *slog.Logger) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zapToSlog(logger, zapcore.WarnLevel, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("dial etcd at %v: %w", endpoints, err)
	}
	// Any linearizable read proves a leader and a quorum.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "/shardline/", clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd at %v does not answer: %w", endpoints, err)
	}
	return cli, nil
}
