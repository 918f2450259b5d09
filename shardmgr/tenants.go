package shardmgr

import (
	"context"
	"fmt"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/storage/etcdstore"
)

// TenantData finds a tenant's rows on a PostgreSQL server.
type TenantData interface {
	// TenantTable returns a table of the server dsn names that holds rows
	// of tenant, or "" when none does.
	TenantTable(ctx context.Context, dsn string, tenant shardline.TenantID) (string, error)
}

// TenantDataFunc adapts a function to TenantData.
type TenantDataFunc func(ctx context.Context, dsn string, tenant shardline.TenantID) (string, error)

// TenantTable calls f.
func (f TenantDataFunc) TenantTable(ctx context.Context, dsn string, tenant shardline.TenantID) (string, error) {
	return f(ctx, dsn, tenant)
}

var _ TenantData = TenantDataFunc(nil)

// TenantView is where a tenant lives and whether it is registered. Every
// valid tenant id has a view: an unregistered tenant lives where its slot
// says.
type TenantView struct {
	Tenant shardline.TenantID
	Shard  shardline.ShardID
	Slot   int
	// Pinned is true when an override, not the slot, decides the shard.
	Pinned bool
	// Registered is true when the tenant has a record in etcd.
	Registered bool
	// Revision is the etcd revision the view was read at.
	Revision int64
	// Changed and Note are set by the calls that change a tenant: whether
	// anything was written, and what the call did, in one sentence for
	// people ("tenant acme already exists on shard s1; nothing changed").
	Changed bool
	Note    string
}

func view(tp etcdstore.TenantPlacement) TenantView {
	return TenantView{Tenant: tp.Tenant, Shard: tp.Shard, Slot: tp.Slot, Pinned: tp.Pinned, Registered: tp.Registered, Revision: tp.Revision}
}

// CreateTenant registers tenant, pinned to shard unless shard is "" (then
// its slot decides). Creating an existing tenant again changes nothing,
// except that a different shard pins it there. The view's Note says which.
//
// A change that would route the tenant away from the shard that holds its
// rows is refused with an error wrapping shardline.ErrTenantHasData: moving
// rows is a move, not a pin. Other errors wrap shardline.ErrInvalidTenant,
// ErrInvalidShard, ErrShardNotFound, ErrNoPlacement or ErrConflict, or say
// that the shard's rows could not be checked.
func (m *Manager) CreateTenant(ctx context.Context, tenant shardline.TenantID, shard shardline.ShardID) (TenantView, error) {
	return m.change(ctx, etcdstore.OpCreate, tenant, shard)
}

// ShowTenant returns where tenant lives. An unregistered tenant is not an
// error: it has a slot and a shard. Errors wrap shardline.ErrInvalidTenant or
// ErrNoPlacement.
func (m *Manager) ShowTenant(ctx context.Context, tenant shardline.TenantID) (TenantView, error) {
	return m.locate(ctx, tenant)
}

// ListTenants returns the registered tenants, sorted by id.
func (m *Manager) ListTenants(ctx context.Context) ([]TenantView, error) {
	all, err := m.store.LocateRegistered(ctx)
	if err != nil {
		return nil, err
	}
	views := make([]TenantView, len(all))
	for i, tp := range all {
		views[i] = view(tp)
	}
	return views, nil
}

// PinTenant overrides tenant's slot with shard, registering the tenant if
// needed. An empty shard pins the tenant where it lives now, so that later
// slot moves leave it in place.
//
// Errors are those of CreateTenant: a tenant with rows on its shard is not
// pinned to another one.
func (m *Manager) PinTenant(ctx context.Context, tenant shardline.TenantID, shard shardline.ShardID) (TenantView, error) {
	return m.change(ctx, etcdstore.OpPin, tenant, shard)
}

// UnpinTenant removes a registered tenant's override, so its slot decides
// again. Errors wrap shardline.ErrInvalidTenant, ErrTenantNotFound,
// ErrNoPlacement or ErrConflict, or ErrTenantHasData when its slot's shard
// is not the one that holds its rows.
func (m *Manager) UnpinTenant(ctx context.Context, tenant shardline.TenantID) (TenantView, error) {
	return m.change(ctx, etcdstore.OpUnpin, tenant, "")
}

// change makes op through the store, with the check that keeps a tenant
// with rows where they are, and describes what it did.
func (m *Manager) change(ctx context.Context, op etcdstore.TenantOp, tenant shardline.TenantID, shard shardline.ShardID) (TenantView, error) {
	check := func(ctx context.Context, tenant shardline.TenantID, from, to shardline.ShardID) error {
		return m.checkNoRows(ctx, op, tenant, from, to)
	}
	c, err := m.store.ChangeTenant(ctx, op, tenant, shard, check)
	if err != nil {
		return TenantView{}, err
	}
	v, err := m.locate(ctx, tenant)
	if err != nil {
		return TenantView{}, err
	}
	v.Changed, v.Note = c.Changed, note(op, tenant, c)
	if c.Changed {
		m.logger.Info("tenant changed", "tenant", tenant, "op", opName[op], "from", c.From, "to", c.To, "revision", c.Record.ModRevision)
	}
	return v, nil
}

var opName = map[etcdstore.TenantOp]string{etcdstore.OpCreate: "create", etcdstore.OpPin: "pin", etcdstore.OpUnpin: "unpin"}

// checkNoRows refuses to route tenant from one shard to another while the
// first holds rows of it. Rows written between this check and the write of
// the pin are not seen: only a move, which freezes the tenant, closes that
// window.
func (m *Manager) checkNoRows(ctx context.Context, op etcdstore.TenantOp, tenant shardline.TenantID, from, to shardline.ShardID) error {
	sh, err := m.store.Shard(ctx, from)
	if err != nil {
		return err
	}
	table, err := m.data.TenantTable(ctx, sh.Primary.DSN, tenant)
	if err != nil {
		return fmt.Errorf("cannot check whether tenant %s has rows on shard %s, so it stays there: %w", tenant, from, err)
	}
	if table == "" {
		return nil
	}
	doing := map[etcdstore.TenantOp]string{
		etcdstore.OpCreate: "pinning it to shard " + string(to),
		etcdstore.OpPin:    "pinning it to shard " + string(to),
		etcdstore.OpUnpin:  "unpinning it (its slot's shard is " + string(to) + ")",
	}[op]
	return &shardline.Error{
		Kind: shardline.ErrTenantHasData,
		Message: fmt.Sprintf("tenant %s has rows on shard %s (in %s): %s would route it away from its data; nothing changed",
			tenant, from, table, doing),
		Hint: fmt.Sprintf("moving a tenant's rows is a move: 'shardline tenant move' is coming; until then copy its rows to %s yourself, "+
			"delete them from %s, then run this again", to, from),
	}
}

// note says in one sentence what a change did.
func note(op etcdstore.TenantOp, t shardline.TenantID, c etcdstore.TenantChange) string {
	pinned := c.Record.Shard != ""
	switch {
	case op == etcdstore.OpCreate && c.Created && pinned:
		return fmt.Sprintf("created tenant %s, pinned to shard %s", t, c.To)
	case op == etcdstore.OpCreate && c.Created:
		return fmt.Sprintf("created tenant %s; it lives on shard %s, where its slot is", t, c.To)
	case op == etcdstore.OpCreate && !c.Changed:
		return fmt.Sprintf("tenant %s already exists on shard %s; nothing changed", t, c.To)
	case op == etcdstore.OpUnpin && !c.Changed:
		return fmt.Sprintf("tenant %s is not pinned; nothing changed (it lives on shard %s, where its slot is)", t, c.To)
	case op == etcdstore.OpUnpin:
		return fmt.Sprintf("unpinned tenant %s; it lives on shard %s, where its slot is", t, c.To)
	case !c.Changed:
		return fmt.Sprintf("tenant %s is already pinned to shard %s; nothing changed", t, c.To)
	case c.From == c.To:
		return fmt.Sprintf("pinned tenant %s to its current shard %s", t, c.To)
	default:
		return fmt.Sprintf("pinned tenant %s to shard %s (it had no rows on %s)", t, c.To, c.From)
	}
}

func (m *Manager) locate(ctx context.Context, tenant shardline.TenantID) (TenantView, error) {
	tp, err := m.store.Locate(ctx, tenant)
	if err != nil {
		return TenantView{}, err
	}
	return view(tp), nil
}
