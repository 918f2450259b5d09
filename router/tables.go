package router

import (
	"strings"
	"sync"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// tableCheck says whether a statement without a tenant may run on any shard:
// true when it reads no relation outside the system catalogs (pg_catalog,
// information_schema, unqualified pg_* names). Drivers and ORMs send such
// statements before any tenant is set. It parses with the PostgreSQL parser
// and caches the verdict per statement text; the router calls it only for
// statements that have no tenant, so the tenant hot path never parses.
type tableCheck struct {
	mu    sync.RWMutex
	cache map[string]tableVerdict
	max   int
}

type tableVerdict struct {
	anyShard bool
	table    string // the first tenant table found, for the error message
}

func newTableCheck(max int) *tableCheck {
	return &tableCheck{cache: make(map[string]tableVerdict), max: max}
}

// check returns the verdict for sql. A statement the parser rejects may run
// anywhere: the shard reports the syntax error itself.
func (c *tableCheck) check(sql string) tableVerdict {
	c.mu.RLock()
	v, ok := c.cache[sql]
	c.mu.RUnlock()
	if ok {
		return v
	}
	v = verdictOf(sql)
	c.mu.Lock()
	if len(c.cache) >= c.max {
		clear(c.cache) // bounded; a full cache is rare and cheap to refill
	}
	c.cache[sql] = v
	c.mu.Unlock()
	return v
}

func verdictOf(sql string) tableVerdict {
	sum, err := pg_query.Summary(sql, -1)
	if err != nil {
		return tableVerdict{anyShard: true}
	}
	for _, t := range sum.Tables {
		if !isCatalogTable(t.SchemaName, t.TableName) {
			return tableVerdict{table: t.Name}
		}
	}
	return tableVerdict{anyShard: true}
}

func isCatalogTable(schema, table string) bool {
	switch strings.ToLower(schema) {
	case "pg_catalog", "information_schema":
		return true
	case "":
		return strings.HasPrefix(strings.ToLower(table), "pg_")
	}
	return false
}
