package api

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/shardmgr"
)

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !s.ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "not ready\n")
		return
	}
	io.WriteString(w, "ok\n")
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) (int, any, error) {
	st, err := s.mgr.Status(r.Context())
	if err != nil {
		return 0, nil, err
	}
	out := Status{Cluster: st.Cluster, RouterDSN: s.router, EtcdRevision: st.EtcdRevision, MapRevision: st.MapRevision, Shards: []ShardStatus{}}
	for _, sh := range st.Shards {
		ss := ShardStatus{
			ID:            string(sh.Shard.ID),
			Epoch:         sh.Shard.Epoch,
			Slots:         sh.Slots,
			PinnedTenants: sh.PinnedTenants,
			Primary:       member(sh.Shard.Primary),
			Replicas:      []Replica{},
		}
		for i, m := range sh.Shard.Replicas {
			r := Replica{Name: m.Name, DSN: m.DSN, LagMS: -1}
			if i < len(sh.Replicas) {
				h := sh.Replicas[i]
				r.Healthy, r.LagBytes, r.LagMS = h.Healthy, h.LagBytes, h.LagMillis
			}
			ss.Replicas = append(ss.Replicas, r)
		}
		out.Shards = append(out.Shards, ss)
	}
	return http.StatusOK, out, nil
}

func member(m shardline.Member) Member { return Member{Name: m.Name, DSN: m.DSN} }

func tenantView(v shardmgr.TenantView) TenantView {
	return TenantView{Tenant: string(v.Tenant), Shard: string(v.Shard), Slot: v.Slot, Pinned: v.Pinned, Registered: v.Registered,
		Changed: v.Changed, Note: v.Note}
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var req CreateTenantRequest
	if err := decode(w, r, maxBody, &req, false); err != nil {
		return 0, nil, err
	}
	v, err := s.mgr.CreateTenant(r.Context(), shardline.TenantID(req.Tenant), shardline.ShardID(req.Shard))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, tenantView(v), nil
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) (int, any, error) {
	views, err := s.mgr.ListTenants(r.Context())
	if err != nil {
		return 0, nil, err
	}
	out := TenantList{Tenants: make([]TenantView, len(views))}
	for i, v := range views {
		out.Tenants[i] = tenantView(v)
	}
	return http.StatusOK, out, nil
}

func (s *Server) showTenant(w http.ResponseWriter, r *http.Request) (int, any, error) {
	v, err := s.mgr.ShowTenant(r.Context(), shardline.TenantID(r.PathValue("tenant")))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, tenantView(v), nil
}

func (s *Server) pinTenant(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var req PinRequest
	if err := decode(w, r, maxBody, &req, true); err != nil {
		return 0, nil, err
	}
	v, err := s.mgr.PinTenant(r.Context(), shardline.TenantID(r.PathValue("tenant")), shardline.ShardID(req.Shard))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, tenantView(v), nil
}

func (s *Server) unpinTenant(w http.ResponseWriter, r *http.Request) (int, any, error) {
	v, err := s.mgr.UnpinTenant(r.Context(), shardline.TenantID(r.PathValue("tenant")))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, tenantView(v), nil
}

// checkSchema reports every shard's tenant tables: 422 when a shard could
// not be read or a table has a problem.
func (s *Server) checkSchema(w http.ResponseWriter, r *http.Request) (int, any, error) {
	results, err := s.mgr.CheckSchema(r.Context())
	if err != nil {
		return 0, nil, err
	}
	col := s.mgr.TenantColumn()
	out := SchemaCheckResponse{TenantColumn: col, Results: make([]SchemaResult, len(results))}
	var unread []string
	problems := 0
	for i, res := range results {
		out.Results[i] = schemaResult(res, col)
		if !res.OK {
			unread = append(unread, string(res.Shard))
		}
		for _, t := range out.Results[i].Tables {
			problems += len(t.Problems)
		}
	}
	var msgs []string
	if len(unread) > 0 {
		msgs = append(msgs, "could not read "+strings.Join(unread, ", "))
	}
	if problems > 0 {
		msgs = append(msgs, fmt.Sprintf("%d problems with tenant tables (hint: 'shardline schema apply' adds the missing row-level security; a primary key must be changed by hand)", problems))
	}
	if len(msgs) == 0 {
		return http.StatusOK, out, nil
	}
	out.Error = strings.Join(msgs, "; ")
	return http.StatusUnprocessableEntity, out, nil
}

// schemaResult is a shard's schema outcome as the API shows it.
func schemaResult(res shardmgr.SchemaResult, column string) SchemaResult {
	out := SchemaResult{Shard: string(res.Shard), OK: res.OK, Error: res.Error}
	for _, t := range res.Tables {
		out.Tables = append(out.Tables, TenantTable{
			Table: t.Qualified(), Partition: t.Partition, RLS: t.RLS, Forced: t.Forced, Policy: t.Policy,
			PrimaryKeyLeads: t.PrimaryKeyLeads, OptOut: t.OptOut, Problems: t.Problems(column)})
	}
	return out
}

func (s *Server) applySchema(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var req SchemaRequest
	if err := decode(w, r, maxSchemaBody, &req, false); err != nil {
		return 0, nil, err
	}
	results, err := s.mgr.ApplySchema(r.Context(), req.SQL)
	if err != nil {
		return 0, nil, err
	}
	out := SchemaResponse{Results: make([]SchemaResult, len(results))}
	var applied, failed []string
	for i, res := range results {
		out.Results[i] = schemaResult(res, s.mgr.TenantColumn())
		if res.OK {
			applied = append(applied, string(res.Shard))
		} else {
			failed = append(failed, string(res.Shard))
		}
	}
	if len(failed) == 0 {
		return http.StatusOK, out, nil
	}
	out.Error = fmt.Sprintf("schema change not applied on %s", strings.Join(failed, ", "))
	if len(applied) > 0 {
		out.Error += fmt.Sprintf("; applied on %s", strings.Join(applied, ", "))
	}
	return http.StatusUnprocessableEntity, out, nil
}
