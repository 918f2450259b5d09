package api

// The JSON documents of the admin API. They are the wire contract: the
// server fills them from shardmgr's types and the Client returns them.

// Status is the body of GET /v1/status.
type Status struct {
	Cluster string `json:"cluster"`
	// RouterDSN is where clients connect to the router served beside this
	// API (`shardline up`'s); "" when the API runs without one.
	RouterDSN string `json:"router_dsn,omitempty"`
	// EtcdRevision is the revision the placement was read at.
	EtcdRevision int64 `json:"etcd_revision"`
	// MapRevision is the revision of the router's map; 0 when unknown.
	MapRevision int64         `json:"map_revision"`
	Shards      []ShardStatus `json:"shards"`
}

// ShardStatus is one shard of Status.
type ShardStatus struct {
	ID            string    `json:"id"`
	Epoch         int64     `json:"epoch"`
	Slots         int       `json:"slots"`
	PinnedTenants int       `json:"pinned_tenants"`
	Primary       Member    `json:"primary"`
	Replicas      []Replica `json:"replicas"`
}

// Replica is a replica member with the router's last health sample.
// LagMS is -1 while the replica has not been sampled or is behind every
// primary position the router remembers.
type Replica struct {
	Name     string `json:"name"`
	DSN      string `json:"dsn"`
	Healthy  bool   `json:"healthy"`
	LagBytes int64  `json:"lag_bytes"`
	LagMS    int64  `json:"lag_ms"`
}

// Member is one PostgreSQL server of a shard.
type Member struct {
	Name string `json:"name"`
	DSN  string `json:"dsn"`
}

// TenantView is where a tenant lives: the body of the tenant endpoints.
type TenantView struct {
	Tenant string `json:"tenant"`
	Shard  string `json:"shard"`
	Slot   int    `json:"slot"`
	// Pinned is true when an override, not the slot, decides the shard.
	Pinned bool `json:"pinned"`
	// Registered is true when the tenant was created; any tenant id has a
	// view.
	Registered bool `json:"registered"`
	// Changed and Note answer a create, pin or unpin: whether anything
	// was written, and what was done, in one sentence for people.
	Changed bool   `json:"changed"`
	Note    string `json:"note,omitempty"`
}

// TenantList is the body of GET /v1/tenants.
type TenantList struct {
	Tenants []TenantView `json:"tenants"`
}

// CreateTenantRequest is the body of POST /v1/tenants. Shard is optional.
type CreateTenantRequest struct {
	Tenant string `json:"tenant"`
	Shard  string `json:"shard,omitempty"`
}

// PinRequest is the optional body of PUT /v1/tenants/{tenant}/pin. Without
// a shard the tenant is pinned where it lives now.
type PinRequest struct {
	Shard string `json:"shard,omitempty"`
}

// SchemaRequest is the body of POST /v1/schema.
type SchemaRequest struct {
	SQL string `json:"sql"`
}

// SchemaResult is the outcome on one shard.
type SchemaResult struct {
	Shard string `json:"shard"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Tables are the shard's tenant tables after the change (or as the
	// check found them).
	Tables []TenantTable `json:"tables,omitempty"`
}

// TenantTable is a table with the tenant column on one shard, and whether
// row-level security limits its rows to the session's tenant.
type TenantTable struct {
	Table           string `json:"table"` // schema-qualified, as SQL writes it
	Partition       bool   `json:"partition,omitempty"`
	RLS             bool   `json:"rls"`
	Forced          bool   `json:"forced"`
	Policy          bool   `json:"policy"`
	PrimaryKeyLeads bool   `json:"primary_key_leads"`
	OptOut          string `json:"opt_out,omitempty"` // why the table opted out of the policies
	// Problems say, in words, what is wrong; none when the table is
	// protected (or opted out) and its primary key leads with the tenant
	// column.
	Problems []string `json:"problems,omitempty"`
}

// SchemaCheckResponse is the body of GET /v1/schema/check: 200 when every
// shard was read and no tenant table has a problem, 422 (with Error set)
// otherwise.
type SchemaCheckResponse struct {
	TenantColumn string         `json:"tenant_column"`
	Results      []SchemaResult `json:"results"`
	Error        string         `json:"error,omitempty"`
}

// SchemaResponse is the body of POST /v1/schema: 200 when every shard
// applied the change, 422 (with Error set) when one did not.
type SchemaResponse struct {
	Results []SchemaResult `json:"results"`
	Error   string         `json:"error,omitempty"`
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error string `json:"error"`
}
