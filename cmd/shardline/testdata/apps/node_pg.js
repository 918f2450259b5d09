// node-postgres (pg.Pool) behind the shardline router, with the password
// of the application user. Two tenants: one bound by the startup option
// (options: '-c shardline.tenant=...'), one by SET on each connection the
// pool opens. Each inserts with parameters (the extended protocol) and
// lists the table without a WHERE clause; then the first tries to forge
// its binding with set_config and a name the router cannot see.
// Prints one JSON object. The pg module is found through NODE_PATH.
//
// usage: node node_pg.js DSN TENANT_OPTION TENANT_SET ROWS
'use strict';
const pg = require('pg');

const [dsn, byOption, bySet, rowsArg] = process.argv.slice(2);
const rows = Number(rowsArg);

async function list(pool) {
  const r = await pool.query('SELECT tenant_id, id, body FROM notes ORDER BY id');
  return r.rows.map((n) => ({ tenant: n.tenant_id, id: n.id, body: n.body }));
}

async function main() {
  const optionPool = new pg.Pool({ connectionString: dsn, options: `-c shardline.tenant=${byOption}`, max: 2 });
  const setPool = new pg.Pool({ connectionString: dsn, max: 2 });
  // The pool hands the client out after this query: a client runs its
  // queries in order.
  let setFailed = null;
  setPool.on('connect', (client) => {
    client.query('SET shardline.tenant = ' + client.escapeLiteral(bySet)).catch((e) => { setFailed = e; });
  });
  const insert = 'INSERT INTO notes (tenant_id, id, body) VALUES (current_setting(\'shardline.tenant\'), $1, $2)';
  const out = {};
  try {
    // Interleaved, concurrently: both pools' connections busy at once.
    const work = [];
    for (let i = 0; i < rows; i++) {
      work.push(optionPool.query(insert, [i, `${byOption} ${i}`]));
      work.push(setPool.query(insert, [i, `${bySet} ${i}`]));
    }
    await Promise.all(work);
    if (setFailed) throw setFailed;
    out[byOption] = await list(optionPool);
    out[bySet] = await list(setPool);

    const client = await optionPool.connect();
    try {
      await client.query("SELECT set_config('shard'||'line.tenant', $1, false)", [bySet]);
      out.forge = { code: null };
    } catch (e) {
      out.forge = { code: e.code, error: e.message };
    }
    // The same connection still reads only its own tenant's rows.
    const after = await client.query('SELECT current_setting(\'shardline.tenant\') AS t, count(*)::int AS n FROM notes');
    out.after_forge = { tenant: after.rows[0].t, count: after.rows[0].n };
    client.release();
  } finally {
    await optionPool.end();
    await setPool.end();
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(`node-postgres: ${e.code || ''} ${e.message}`);
  process.exit(1);
});
