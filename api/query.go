package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/shardline/shardline"
)

// QueryRequest is an operator's query of one shard (POST
// /v1/shards/{shard}/query): one statement, read-only, across tenants,
// unless Write.
type QueryRequest struct {
	SQL   string `json:"sql"`
	Write bool   `json:"write,omitempty"`
}

// QueryResponse is what the query returned: its last result's columns and
// rows as text (null for NULL), at most shardmgr.QueryLimit of them.
type QueryResponse struct {
	Shard     string      `json:"shard"`
	Columns   []string    `json:"columns"`
	Rows      [][]*string `json:"rows"`
	Truncated bool        `json:"truncated,omitempty"`
	Tag       string      `json:"tag"`
}

func (s *Server) query(w http.ResponseWriter, r *http.Request) (int, any, error) {
	shard := r.PathValue("shard")
	if err := shardline.ValidateShardID(shard); err != nil {
		return 0, nil, err
	}
	var req QueryRequest
	if err := decode(w, r, maxSchemaBody, &req, false); err != nil {
		return 0, nil, err
	}
	res, err := s.mgr.Query(r.Context(), shardline.ShardID(shard), req.SQL, req.Write)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, QueryResponse{Shard: shard, Columns: res.Columns, Rows: res.Rows, Truncated: res.Truncated, Tag: res.Tag}, nil
}

// Query runs sql on shard's primary as the admin (see QueryRequest).
func (c *Client) Query(ctx context.Context, shard, sql string, write bool) (QueryResponse, error) {
	var resp QueryResponse
	err := c.do(ctx, http.MethodPost, "/v1/shards/"+url.PathEscape(shard)+"/query", QueryRequest{SQL: sql, Write: write}, &resp)
	return resp, err
}
