package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// IsolationConfig configures the isolation drill: a neighbour's attacks on
// other tenants' rows through the router, each judged by what the shards
// hold afterwards and by what the attacker got back. It checks invariant 3
// of ARCHITECTURE.md: no session reads or writes another tenant's rows, and
// none writes rows tagged with another tenant.
type IsolationConfig struct {
	// RouterDSN reaches the router as an ordinary client (with a password,
	// when the router asks for one).
	RouterDSN string
	// Shards are the cluster's shards with their primaries' DSNs as an
	// administrator (a superuser, which row-level security does not
	// bind): the drill seeds and checks its rows there.
	Shards []IsolationShard
	// Cluster applies the drill's schema as `shardline schema apply` does
	// and says where a tenant lives.
	Cluster IsolationCluster
	// TLSRequired says the router is meant to refuse plaintext clients: a
	// plaintext session it accepts is then a leak, not a skipped attack.
	TLSRequired bool
	// BoundDSN, when set, reaches the router as a user bound to one
	// tenant; the drill learns the tenant with SHOW shardline.tenant and
	// has that user name the drill's tenants.
	BoundDSN string
	Logger   *slog.Logger
	// Progress receives a line per attack; nil discards.
	Progress io.Writer
	// Only, when set, runs only the attacks whose name contains it.
	Only string
}

// IsolationShard is one shard as the isolation drill sees it.
type IsolationShard struct {
	ID      string
	Primary string // DSN of a superuser
}

// IsolationCluster is what the isolation drill needs of the cluster's admin
// API.
type IsolationCluster interface {
	// ApplySchema runs a schema script on every shard's primary, adding
	// row-level security to tenant tables; an error when a shard refused.
	ApplySchema(ctx context.Context, sql string) error
	// TenantShard returns the shard tenant lives on.
	TenantShard(ctx context.Context, tenant string) (string, error)
}

// BoundUsers is an optional capability of an IsolationCluster (found by
// type assertion): making router users bound to one tenant, for the
// bound-credential attack when no BoundDSN is given.
type BoundUsers interface {
	AddBoundUser(ctx context.Context, name, password, tenant string) error
	RemoveUser(ctx context.Context, name string) error
}

// ErrBaseline is wrapped by RunIsolation's error when tenants cannot read
// their own rows through the router before any attack: with a binding that
// does not work, every attack would look blocked.
var ErrBaseline = errors.New("drill: baseline failed")

// Results of an attack.
const (
	Blocked = "blocked"
	Leaked  = "LEAKED"
	Skipped = "skipped"
	Failed  = "error" // the attack could not run: nothing is known of it
)

// AttackResult is the outcome of one attack.
type AttackResult struct {
	Attack string `json:"attack"`
	What   string `json:"what"`
	Result string `json:"result"`
	// BlockedBy says what stopped it (the router with a SQLSTATE,
	// PostgreSQL, row-level security filtering): for a blocked attack.
	BlockedBy string `json:"blocked_by,omitempty"`
	// Leak says what the attacker read or wrote: for a leaked attack.
	Leak string `json:"leaked,omitempty"`
	// Reason says why an attack was skipped or could not run.
	Reason string `json:"reason,omitempty"`
}

// IsolationReport is the drill's outcome.
type IsolationReport struct {
	Duration time.Duration `json:"duration_ns"`
	// Table is the tenant table the drill made (and dropped).
	Table string `json:"table"`
	// Attacker, Neighbour and Remote are the drill's tenants: the
	// neighbour lives on the attacker's shard, the remote one on another
	// ("" with one shard).
	Attacker  string `json:"attacker"`
	Neighbour string `json:"neighbour"`
	Remote    string `json:"remote,omitempty"`
	// Role is the role the router's sessions run as on the shards.
	Role    string         `json:"role"`
	Attacks []AttackResult `json:"attacks"`
	// CleanupError is set when what the drill made could not all be
	// removed.
	CleanupError string `json:"cleanup_error,omitempty"`
}

// Count returns how many attacks had the result.
func (r *IsolationReport) Count(result string) int {
	n := 0
	for _, a := range r.Attacks {
		if a.Result == result {
			n++
		}
	}
	return n
}

// Leaked reports whether any attack leaked.
func (r *IsolationReport) Leaked() bool { return r.Count(Leaked) > 0 }

// Validate fills defaults and checks the configuration.
func (c *IsolationConfig) Validate() error {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	switch {
	case c.RouterDSN == "":
		return errors.New("drill: RouterDSN is required")
	case len(c.Shards) == 0:
		return errors.New("drill: no shards")
	case c.Cluster == nil:
		return errors.New("drill: Cluster is required")
	}
	for _, s := range c.Shards {
		if s.ID == "" || s.Primary == "" {
			return errors.New("drill: every shard needs an id and a primary")
		}
	}
	return nil
}

// isoTable is the drill's tenant table; views and functions it makes
// start with the same name, so that cleanup finds them.
const isoTable = "shardline_drill_iso"

// seedRows is how many rows each drill tenant starts with.
const seedRows = 3

// isolation is one run of the drill.
type isolation struct {
	cfg  IsolationConfig
	run  string // random, in every tenant id and secret of this run
	a    string // the attacker
	v    string // the neighbour: a victim on the attacker's shard
	w    string // the remote victim, on another shard ("" with one shard)
	home map[string]string
	// admin holds a superuser connection to each shard's primary.
	admin map[string]*pgx.Conn
	role  string
}

// RunIsolation runs the drill. It returns an error only when the drill
// could not run: a router it cannot reach (wrapping ErrRouterUnreachable,
// found before it changes anything), a schema the cluster refused, or a
// baseline that failed (wrapping ErrBaseline). What it made is removed
// before it returns, also then.
func RunIsolation(ctx context.Context, cfg IsolationConfig) (*IsolationReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	d := &isolation{cfg: cfg, run: hex.EncodeToString(b[:]), home: map[string]string{}, admin: map[string]*pgx.Conn{}}
	defer func() {
		for _, c := range d.admin {
			c.Close(context.WithoutCancel(ctx))
		}
	}()
	if err := d.pickTenants(ctx); err != nil {
		return nil, err
	}
	if err := d.checkRouter(ctx); err != nil {
		return nil, err
	}
	for _, s := range cfg.Shards {
		c, err := pgx.Connect(ctx, s.Primary)
		if err != nil {
			return nil, fmt.Errorf("drill: connect to shard %s's primary as its administrator: %w", s.ID, err)
		}
		d.admin[s.ID] = c
	}
	rep := &IsolationReport{Table: isoTable, Attacker: d.a, Neighbour: d.v, Remote: d.w}
	err := d.setup(ctx)
	if err == nil {
		err = d.baseline(ctx)
	}
	if err == nil {
		rep.Role = d.role
		for _, at := range append(attacks(), authAttacks()...) {
			if cfg.Only != "" && !strings.Contains(at.name, cfg.Only) {
				continue
			}
			res := d.runAttack(ctx, at)
			fmt.Fprintf(cfg.Progress, "isolation drill: %-28s %s\n", at.name, res.Result)
			rep.Attacks = append(rep.Attacks, res)
			if ctx.Err() != nil {
				break
			}
		}
	}
	if cerr := d.cleanup(context.WithoutCancel(ctx)); cerr != nil {
		rep.CleanupError = cerr.Error()
		cfg.Logger.Error("isolation drill cleanup", "err", cerr)
	}
	rep.Duration = time.Since(start)
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// pickTenants finds, among ids of this run, a neighbour on the attacker's
// shard and a remote tenant on another shard.
func (d *isolation) pickTenants(ctx context.Context) error {
	for i := 0; i < 200 && (d.v == "" || d.w == "" && len(d.cfg.Shards) > 1); i++ {
		t := fmt.Sprintf("iso-%s-%d", d.run, i)
		shard, err := d.cfg.Cluster.TenantShard(ctx, t)
		if err != nil {
			return fmt.Errorf("drill: where does tenant %s live: %w", t, err)
		}
		switch {
		case d.a == "":
			d.a = t
		case shard == d.home[d.a] && d.v == "":
			d.v = t
		case shard != d.home[d.a] && d.w == "":
			d.w = t
		default:
			continue
		}
		d.home[t] = shard
	}
	if d.v == "" || d.w == "" && len(d.cfg.Shards) > 1 {
		return errors.New("drill: found no two tenants on one shard and one on another in 200 tries")
	}
	return nil
}

// checkRouter connects through the router as the attacker and checks that
// it routes it where the cluster says.
func (d *isolation) checkRouter(ctx context.Context) error {
	dsn, err := withOptions(d.cfg.RouterDSN, "-c shardline.tenant="+d.a)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrRouterUnreachable, d.cfg.RouterDSN, connectCause(err))
	}
	defer c.Close(context.Background())
	var shard string
	if err := c.QueryRow(ctx, "SHOW shardline.shard").Scan(&shard); err != nil {
		return fmt.Errorf("%w at %s: SHOW shardline.shard: %v (is it a Shardline router?)", ErrRouterUnreachable, d.cfg.RouterDSN, err)
	}
	if shard != d.home[d.a] {
		return fmt.Errorf("%w at %s: it routes tenant %s to shard %s, the cluster says %s: it is another cluster's router",
			ErrRouterUnreachable, d.cfg.RouterDSN, d.a, shard, d.home[d.a])
	}
	return nil
}

// The drill's schema, applied as an application's would be: a tenant
// table (which schema apply protects), a view of it that runs with its
// owner's rights and one with the caller's, and a SECURITY DEFINER
// function over it.
var isoSchema = fmt.Sprintf(`
CREATE TABLE %[1]s (tenant_id text NOT NULL, id int NOT NULL, secret text NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE VIEW %[1]s_owner_view AS SELECT * FROM %[1]s;
CREATE VIEW %[1]s_invoker_view WITH (security_invoker = true) AS SELECT * FROM %[1]s;
CREATE FUNCTION %[1]s_lookup(want int) RETURNS SETOF %[1]s LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, public AS $$ SELECT * FROM public.%[1]s WHERE id = want $$;
`, isoTable)

var isoDrop = fmt.Sprintf(`
DROP FUNCTION IF EXISTS %[1]s_lookup(int);
DROP TABLE IF EXISTS %[1]s CASCADE;
`, isoTable)

// setup removes what an interrupted run may have left, applies the schema
// and seeds the rows.
func (d *isolation) setup(ctx context.Context) error {
	if err := d.dropLeftovers(ctx); err != nil {
		return err
	}
	if err := d.cfg.Cluster.ApplySchema(ctx, isoDrop+isoSchema); err != nil {
		return fmt.Errorf("drill: apply the drill's schema: %w", err)
	}
	return d.restore(ctx)
}

// secret is the value of tenant t's row id: it names the run and the tenant,
// so any text the attacker gets back shows whose row it saw.
func (d *isolation) secret(t string, id int) string { return fmt.Sprintf("s:%s:%s:%d", d.run, t, id) }

// forged is a value the attacker writes.
func (d *isolation) forged() string { return "f:" + d.run }

// tenants are the drill's tenants.
func (d *isolation) tenants() []string {
	ts := []string{d.a, d.v}
	if d.w != "" {
		ts = append(ts, d.w)
	}
	return ts
}

// restore puts every shard's table back to the seeded rows.
func (d *isolation) restore(ctx context.Context) error {
	for _, s := range d.cfg.Shards {
		var vals []string
		for _, t := range d.tenants() {
			if d.home[t] != s.ID {
				continue
			}
			for i := 1; i <= seedRows; i++ {
				vals = append(vals, fmt.Sprintf("(%s, %d, %s)", quoteLit(t), i, quoteLit(d.secret(t, i))))
			}
		}
		q := "DELETE FROM " + isoTable
		if len(vals) > 0 {
			q += "; INSERT INTO " + isoTable + " VALUES " + strings.Join(vals, ", ")
		}
		if _, err := d.admin[s.ID].Exec(ctx, q); err != nil {
			return fmt.Errorf("drill: seed shard %s: %w", s.ID, err)
		}
	}
	return nil
}

// baseline checks that each tenant sees exactly its own rows through the
// router, and learns the role the router's sessions run as.
func (d *isolation) baseline(ctx context.Context) error {
	for _, t := range d.tenants() {
		c, err := d.connect(ctx, t)
		if err != nil {
			return fmt.Errorf("%w: connect as tenant %s: %v", ErrBaseline, t, err)
		}
		rows, err := c.conn.Exec(ctx, "SELECT current_user, tenant_id, secret FROM "+isoTable+" ORDER BY id").ReadAll()
		c.close()
		if err == nil {
			err = rows[0].Err
		}
		if err != nil {
			return fmt.Errorf("%w: tenant %s cannot read its rows through the router: %v", ErrBaseline, t, err)
		}
		own := 0
		for _, r := range rows[0].Rows {
			d.role = string(r[0])
			if string(r[1]) == t && string(r[2]) == d.secret(t, own+1) {
				own++
			}
		}
		if own != seedRows {
			return fmt.Errorf("%w: tenant %s sees %d rows through the router, %d of them its own, want its %d: the router's tenant binding does not work, so no attack's result would mean anything",
				ErrBaseline, t, len(rows[0].Rows), own, seedRows)
		}
	}
	return nil
}

// writeLeaks compares every shard's rows with the seeded ones and says
// which changes break isolation: any change to a row of a tenant not in
// writers, and any row on a shard other than its tenant's.
func (d *isolation) writeLeaks(ctx context.Context, writers []string) ([]string, bool, error) {
	var leaks []string
	changed := false
	for _, s := range d.cfg.Shards {
		rows, err := d.admin[s.ID].Query(ctx, "SELECT tenant_id, id, secret FROM "+isoTable)
		if err != nil {
			return nil, false, fmt.Errorf("drill: read shard %s: %w", s.ID, err)
		}
		type row struct {
			tenant, secret string
			id             int
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.tenant, &x.id, &x.secret)
			return x, err
		})
		if err != nil {
			return nil, false, fmt.Errorf("drill: read shard %s: %w", s.ID, err)
		}
		seen := map[string]bool{}
		for _, x := range got {
			seen[x.tenant+"\x00"+fmt.Sprint(x.id)+"\x00"+x.secret] = true
		}
		want := map[string]bool{}
		for _, t := range d.tenants() {
			if d.home[t] == s.ID {
				for i := 1; i <= seedRows; i++ {
					want[t+"\x00"+fmt.Sprint(i)+"\x00"+d.secret(t, i)] = true
				}
			}
		}
		added := map[string]int{}
		removed := map[string]int{}
		for k := range seen {
			if !want[k] {
				added[strings.SplitN(k, "\x00", 2)[0]]++
			}
		}
		for k := range want {
			if !seen[k] {
				removed[strings.SplitN(k, "\x00", 2)[0]]++
			}
		}
		if len(added)+len(removed) > 0 {
			changed = true
		}
		for _, t := range sortedKeys(added) {
			switch {
			case !slices.Contains(writers, t):
				leaks = append(leaks, fmt.Sprintf("wrote %d row(s) tagged %s on %s", added[t], d.label(t), s.ID))
			case d.homeOf(ctx, t) != s.ID:
				leaks = append(leaks, fmt.Sprintf("wrote %d row(s) tagged %s on %s, where its placement will never look", added[t], d.label(t), s.ID))
			}
		}
		for _, t := range sortedKeys(removed) {
			if !slices.Contains(writers, t) {
				leaks = append(leaks, fmt.Sprintf("changed or deleted %d of %s's rows on %s", removed[t], d.label(t), s.ID))
			}
		}
	}
	return leaks, changed, nil
}

// homeOf is the shard of t, asking the cluster for tenants the drill did
// not pick (a forged tenant id).
func (d *isolation) homeOf(ctx context.Context, t string) string {
	if s, ok := d.home[t]; ok {
		return s
	}
	s, err := d.cfg.Cluster.TenantShard(ctx, t)
	if err != nil {
		return ""
	}
	return s
}

// label names a drill tenant by its role in the drill.
func (d *isolation) label(t string) string {
	switch t {
	case d.a:
		return "attacker " + t
	case d.v:
		return "neighbour " + t
	case d.w:
		return "remote " + t
	}
	return t
}

// dropLeftovers removes, as each shard's administrator, what attackers
// made: relations and functions of the drill's names owned by another role
// than the administrator, temporary ones on the router's server
// connections included (a superuser may drop another session's temporary
// objects). The drill's own schema is schema apply's, owned by the
// administrator, and stays.
func (d *isolation) dropLeftovers(ctx context.Context) error {
	for _, s := range d.cfg.Shards {
		c := d.admin[s.ID]
		rows, err := c.Query(ctx, `
			SELECT format('DROP %s IF EXISTS %I.%I CASCADE', CASE c.relkind WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END, n.nspname, c.relname)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relname LIKE $1 AND c.relkind IN ('r', 'p', 'v') AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
			UNION ALL
			SELECT format('DROP FUNCTION IF EXISTS %s CASCADE', p.oid::regprocedure)
			FROM pg_proc p WHERE p.proname LIKE $1 AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)`, isoTable+"%")
		if err != nil {
			return fmt.Errorf("drill: find what attackers left on %s: %w", s.ID, err)
		}
		drops, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("drill: find what attackers left on %s: %w", s.ID, err)
		}
		for _, q := range drops {
			if _, err := c.Exec(ctx, q); err != nil {
				return fmt.Errorf("drill: %s on %s: %w", q, s.ID, err)
			}
		}
	}
	return nil
}

func (d *isolation) cleanup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var errs []error
	if len(d.admin) == len(d.cfg.Shards) {
		errs = append(errs, d.dropLeftovers(ctx))
	}
	if d.a != "" {
		if err := d.cfg.Cluster.ApplySchema(ctx, isoDrop); err != nil {
			errs = append(errs, fmt.Errorf("drill: drop the drill's schema: %w", err))
		}
	}
	return errors.Join(errs...)
}

func quoteLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
