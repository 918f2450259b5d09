package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults of ClusterConfig.
const (
	DefaultClusterShards = 2
	clusterReadyTimeout  = 3 * time.Minute
	// clusterStopGrace exceeds the 15 s in which `shardline up` stops its
	// PostgreSQL servers after SIGTERM.
	clusterStopGrace = 30 * time.Second
	// pgPortLow and pgPortHigh bound the PostgreSQL ports: below Linux's
	// ephemeral range, so the local ends of client connections (pgbench
	// opens thousands) do not take them.
	pgPortLow  = 16000
	pgPortHigh = 32000
)

// readyMarker starts the line `shardline up` prints when it serves.
const readyMarker = "shardline ready:"

// ClusterConfig describes the throwaway cluster the bench runs as a child
// process: `shardline up` with its shards' primaries (and Replicas streaming
// replicas each), every port a free one on 127.0.0.1.
type ClusterConfig struct {
	// Command is the shardline binary. Required.
	Command string
	// Args are put before "up" (a test binary uses them to act as
	// shardline); usually empty.
	Args []string
	// Env, when set, is the child's environment; nil means this
	// process's.
	Env []string
	// Dir is the cluster directory; it must not hold another cluster.
	// Required; created (mode 0755, so the postgres user can reach it).
	Dir string
	// Shards is --shards (default DefaultClusterShards).
	Shards int
	// PoolSize is the router's --pool-size (default DefaultPoolSize).
	PoolSize int
	// Replicas is --replicas: streaming replicas per shard (default 0).
	Replicas int
	// MaxConnections is --max-connections: every PostgreSQL server's
	// max_connections; 0 keeps up's default (300).
	MaxConnections int
	// NoWriteTokens starts the router with --no-write-tokens: no
	// read-your-writes token after write transactions.
	NoWriteTokens bool
	// Logger receives start and stop lines; nil discards them.
	Logger *slog.Logger
}

// Cluster is a running `shardline up` child: etcd, the shards, the
// manager and a router, all in one process (PostgreSQL as its children).
type Cluster struct {
	Admin
	// RouterDSN is the connection string of up's router as up printed it.
	RouterDSN string
	// MetricsURL is the Prometheus endpoint of up's router (--metrics).
	MetricsURL string
	// Etcd is the embedded etcd's client address (--etcd), for routers of
	// their own (StartRouter).
	Etcd string
	// BindingTokenFile holds the token its shards' shardline.enter()
	// accepts, for routers of their own (--binding-token-file).
	BindingTokenFile string
	proc             *child
	log              *slog.Logger
}

// StartCluster starts `shardline up` on free ports and waits until it
// prints its ready line. When a port was taken in the meantime it tries
// again on other ports (up to three times). The error wraps ErrNotReady
// with the end of up's log when it exits or is not ready within 3 minutes.
func StartCluster(ctx context.Context, c ClusterConfig) (*Cluster, error) {
	if c.Command == "" || c.Dir == "" {
		return nil, fmt.Errorf("%w: cluster: Command and Dir are required", ErrInvalidConfig)
	}
	if c.Shards == 0 {
		c.Shards = DefaultClusterShards
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.Replicas < 0 {
		return nil, fmt.Errorf("%w: cluster: negative replicas", ErrInvalidConfig)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return retryPortTaken(ctx, c.Logger, "cluster", func() (*Cluster, error) {
		return startClusterOnce(ctx, c)
	})
}

func startClusterOnce(ctx context.Context, c ClusterConfig) (*Cluster, error) {
	// A failed attempt leaves a manifest that pins its ports: start clean.
	if err := os.RemoveAll(c.Dir); err != nil {
		return nil, fmt.Errorf("cluster dir: %w", err)
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster dir: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone; the postgres
	// user must be able to traverse it.
	if err := os.Chmod(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster dir: %w", err)
	}
	addrs, err := freeAddrs(5)
	if err != nil {
		return nil, err
	}
	pgBase, err := freePortRange(c.Shards * (1 + c.Replicas))
	if err != nil {
		return nil, err
	}
	args := append(append([]string(nil), c.Args...), "up",
		"--dir", filepath.Join(c.Dir, "cluster"),
		"--shards", strconv.Itoa(c.Shards),
		"--replicas", strconv.Itoa(c.Replicas),
		"--listen", addrs[0], "--admin", addrs[1], "--metrics", addrs[2],
		"--etcd", addrs[3], "--etcd-peer", addrs[4],
		"--pg-port", strconv.Itoa(pgBase),
		"--pool-size", strconv.Itoa(c.PoolSize))
	if c.NoWriteTokens {
		args = append(args, "--no-write-tokens")
	}
	if c.MaxConnections > 0 {
		args = append(args, "--max-connections", strconv.Itoa(c.MaxConnections))
	}
	var routerDSN, adminURL string
	proc, err := startReadyChild(ctx, readyChildConfig{
		childConfig: childConfig{
			name: "shardline up", path: c.Command, args: args, dir: c.Dir, env: c.Env,
			logPath: filepath.Join(c.Dir, "up.log"), logger: c.Logger,
		},
		marker: readyMarker, timeout: clusterReadyTimeout, grace: clusterStopGrace,
		started: func(proc *child) {
			c.Logger.Info("starting cluster", "pid", proc.pid(), "router", addrs[0], "admin", addrs[1], "pg_port", pgBase, "log", proc.logPath)
		},
		parse: func(line string) (err error) {
			routerDSN, adminURL, err = ParseReadyLine(line)
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	c.Logger.Info("cluster ready", "pid", proc.pid(), "router", routerDSN, "admin", adminURL)
	return &Cluster{
		Admin:      Admin{URL: adminURL},
		RouterDSN:  routerDSN,
		MetricsURL: "http://" + addrs[2] + "/metrics",
		Etcd:       addrs[3],
		// Where up's local cluster keeps it (storage/postgres/guard.go).
		BindingTokenFile: filepath.Join(c.Dir, "cluster", "pg", "binding.token"),
		proc:             proc,
		log:              c.Logger,
	}, nil
}

// PID is the process id of `shardline up`, which runs up's router (and
// etcd, the manager and the supervision of PostgreSQL).
func (c *Cluster) PID() int { return c.proc.pid() }

// Err returns nil while the cluster runs and an error wrapping
// ErrProcessGone once it has exited.
func (c *Cluster) Err() error { return c.proc.exited() }

// LogPath is the file holding up's stdout and stderr.
func (c *Cluster) LogPath() string { return c.proc.logPath }

// Close stops the cluster with SIGTERM (up then stops its PostgreSQL
// servers) and kills it after 30 s. Safe to call more than once.
func (c *Cluster) Close() error {
	err := c.proc.stop(syscall.SIGTERM, clusterStopGrace)
	c.log.Info("cluster stopped", "pid", c.proc.pid(), "err", err)
	return err
}

// ParseReadyLine reads the router DSN and the admin URL from the line that
// `shardline up` prints when ready:
//
//	shardline ready: router postgres://...  admin http://...  metrics http://...
func ParseReadyLine(line string) (routerDSN, adminURL string, err error) {
	return parseReadyLine(line, readyMarker, "admin")
}

// freeAddrs returns n loopback addresses whose ports were free a moment
// ago.
func freeAddrs(n int) ([]string, error) {
	addrs := make([]string, n)
	for i := range addrs {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	return addrs, nil
}

// freePortRange returns the first of n consecutive loopback ports that
// were free a moment ago, between pgPortLow and pgPortHigh.
func freePortRange(n int) (int, error) {
	span := pgPortHigh - pgPortLow - n
	off := rand.IntN(span)
	for i := 0; i < span; i += n + 1 {
		base := pgPortLow + (off+i)%span
		ok := true
		for p := base; p < base+n && ok; p++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports between %d and %d", n, pgPortLow, pgPortHigh)
}

// Admin reads a cluster's admin API (GET /v1/status, GET /v1/tenants/{t}).
// It decodes only the fields the bench needs.
type Admin struct {
	// URL is the API's base URL, for example http://127.0.0.1:6480.
	URL string
	// Client is the HTTP client; nil means one with a 10 s timeout.
	Client *http.Client
}

// ShardInfo is one shard of the admin API's status.
type ShardInfo struct {
	ID         string
	PrimaryDSN string
	Replicas   []ReplicaInfo
}

// ReplicaInfo is one replica of a shard with the router's last health
// sample.
type ReplicaInfo struct {
	Name    string
	Healthy bool
	// LagMS is -1 while the router has not sampled the replica or it is
	// behind every primary position the router remembers.
	LagMS int64
}

// Shards returns the cluster's shards in the order the API lists them.
func (a Admin) Shards(ctx context.Context) ([]ShardInfo, error) {
	var st struct {
		Shards []struct {
			ID      string `json:"id"`
			Primary struct {
				DSN string `json:"dsn"`
			} `json:"primary"`
			Replicas []struct {
				Name    string `json:"name"`
				Healthy bool   `json:"healthy"`
				LagMS   int64  `json:"lag_ms"`
			} `json:"replicas"`
		} `json:"shards"`
	}
	if err := a.get(ctx, "/v1/status", &st); err != nil {
		return nil, err
	}
	var out []ShardInfo
	for _, s := range st.Shards {
		if s.ID == "" || s.Primary.DSN == "" {
			return nil, fmt.Errorf("admin API status: shard %q without a primary DSN", s.ID)
		}
		info := ShardInfo{ID: s.ID, PrimaryDSN: s.Primary.DSN}
		for _, r := range s.Replicas {
			info.Replicas = append(info.Replicas, ReplicaInfo{Name: r.Name, Healthy: r.Healthy, LagMS: r.LagMS})
		}
		out = append(out, info)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("admin API status lists no shards")
	}
	return out, nil
}

// replicaPoll is how often WaitReplicas reads the status.
const replicaPoll = 250 * time.Millisecond

// WaitReplicas waits until shard has at least one replica and every one is
// healthy with a lag of at most maxLag in the router's last sample, so that
// reads within that bound can go to them. It fails after timeout with the
// replicas' last state.
func (a Admin) WaitReplicas(ctx context.Context, shard string, maxLag, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		shards, err := a.Shards(ctx)
		if err != nil {
			return err
		}
		var reps []ReplicaInfo
		found := false
		for _, s := range shards {
			if s.ID == shard {
				reps, found = s.Replicas, true
			}
		}
		if !found {
			return fmt.Errorf("admin API status: no shard %s", shard)
		}
		if len(reps) == 0 {
			return fmt.Errorf("shard %s has no replicas", shard)
		}
		ready := true
		for _, r := range reps {
			if !r.Healthy || r.LagMS < 0 || time.Duration(r.LagMS)*time.Millisecond > maxLag {
				ready = false
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: the replicas of shard %s are not healthy within %v of lag after %v: %+v", ErrNotReady, shard, maxLag, timeout, reps)
		}
		if err := sleepCtx(ctx, replicaPoll); err != nil {
			return err
		}
	}
}

// TenantShard returns the shard that holds tenant.
func (a Admin) TenantShard(ctx context.Context, tenant string) (string, error) {
	var v struct {
		Shard string `json:"shard"`
	}
	if err := a.get(ctx, "/v1/tenants/"+url.PathEscape(tenant), &v); err != nil {
		return "", err
	}
	if v.Shard == "" {
		return "", fmt.Errorf("admin API: tenant %s has no shard", tenant)
	}
	return v.Shard, nil
}

// FindTenants returns, for each shard in shards, a tenant it holds, named
// prefix followed by a number (prefix1, prefix2, ...). Tenants need no
// registration: any name has a slot, and its slot a shard.
func (a Admin) FindTenants(ctx context.Context, prefix string, shards []string) (map[string]string, error) {
	want := make(map[string]bool, len(shards))
	for _, s := range shards {
		want[s] = true
	}
	found := make(map[string]string, len(shards))
	for i := 1; i <= 1000 && len(found) < len(want); i++ {
		t := prefix + strconv.Itoa(i)
		s, err := a.TenantShard(ctx, t)
		if err != nil {
			return nil, err
		}
		if want[s] && found[s] == "" {
			found[s] = t
		}
	}
	for s := range want {
		if found[s] == "" {
			return nil, fmt.Errorf("no tenant %s1..%s1000 lives on shard %s", prefix, prefix, s)
		}
	}
	return found, nil
}

func (a Admin) get(ctx context.Context, path string, v any) error {
	hc := a.Client
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(a.URL, "/")+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("admin API GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin API GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("admin API GET %s: %w", path, err)
	}
	return nil
}
