/*
 * shardline_guard: the tenant binding of Shardline's router, made so that no
 * client SQL can forge it (docs/isolation.md).
 *
 * Loaded by shared_preload_libraries on every member of a shard. It defines
 *
 *   shardline.tenant         the session's tenant, read by the row-level
 *                            security policies (shardline.current_tenant()).
 *                            PGC_SUSET: SET, set_config(), a function's SET
 *                            clause, ALTER ROLE ... SET and a startup option
 *                            all fail for the router's role, which is no
 *                            superuser. RESET ALL and DISCARD ALL return it
 *                            to '' (no tenant: no rows).
 *   shardline.token_digests  the SHA-256 digests (hex, comma-separated: two
 *                            during a rotation) of the router's binding
 *                            token. PGC_SIGHUP and superuser-only: the
 *                            router's role can neither read nor set it.
 *
 *   shardline.temp_objects   on once the session has a temporary namespace
 *                            (a temporary table, view or sequence, made
 *                            by any statement, function or DO block).
 *                            GUC_REPORT: the server tells the router at
 *                            once, which then keeps the connection to
 *                            the session and never pools it again, since
 *                            a temporary relation shadows the tables of
 *                            the same name for later sessions.
 *
 * and reserves the prefix "shardline.", so that no placeholder of that name
 * can be made by a client. The one way to write shardline.tenant without
 * superuser rights is shardline.enter(tenant, token), which sets it only
 * when the token's digest is one of token_digests. The router sends the
 * token as a bind parameter, which pg_stat_activity does not show, and
 * never forwards the errors of its own calls (their context may carry the
 * parameters).
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

static char *tenant_setting = NULL;
static char *token_digests = NULL;
static bool temp_objects = false;
static object_access_hook_type next_object_access_hook = NULL;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(shardline_enter);

/* guard_object_access marks the session once it has a temporary
 * namespace, after any object is created. */
static void
guard_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					int subId, void *arg)
{
	if (next_object_access_hook)
		next_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_POST_CREATE && !temp_objects)
	{
		Oid			temp_ns,
					temp_toast_ns;

		GetTempNamespaceState(&temp_ns, &temp_toast_ns);
		if (OidIsValid(temp_ns))
			(void) set_config_option("shardline.temp_objects", "on",
									 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SET,
									 true, 0, false);
	}
}

void
_PG_init(void)
{
	DefineCustomStringVariable("shardline.tenant",
							   "The tenant bound to this session by shardline.enter().",
							   NULL, &tenant_setting, "",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("shardline.token_digests",
							   "SHA-256 digests (hex, comma-separated) of the tokens shardline.enter() accepts.",
							   NULL, &token_digests, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL, NULL, NULL, NULL);
	DefineCustomBoolVariable("shardline.temp_objects",
							 "Whether this session has made temporary objects (reported to the router).",
							 NULL, &temp_objects, false,
							 PGC_SUSET, GUC_REPORT, NULL, NULL, NULL);
	MarkGUCPrefixReserved("shardline");
	next_object_access_hook = object_access_hook;
	object_access_hook = guard_object_access;
}

/* digest_matches reports whether hex (64 characters) is one of the
 * comma-separated digests of token_digests; it compares in constant time
 * for each entry. */
static bool
digest_matches(const char *hex)
{
	const char *p = token_digests;
	bool		found = false;

	while (p != NULL && *p != '\0')
	{
		const char *end = strchr(p, ',');
		size_t		len = end ? (size_t) (end - p) : strlen(p);

		while (len > 0 && *p == ' ')
		{
			p++;
			len--;
		}
		if (len == 64)
		{
			unsigned char diff = 0;

			for (int i = 0; i < 64; i++)
				diff |= (unsigned char) (p[i] ^ hex[i]);
			found |= (diff == 0);
		}
		p = end ? end + 1 : NULL;
	}
	return found;
}

/*
 * shardline.enter(tenant text, token text) RETURNS void: binds tenant ('' for
 * none) to the session, as SET shardline.tenant would for a superuser. A
 * token whose digest is not configured raises 28000 and changes nothing.
 * The setting follows the transaction: a rollback undoes it.
 */
Datum
shardline_enter(PG_FUNCTION_ARGS)
{
	text	   *tenant = PG_GETARG_TEXT_PP(0);
	text	   *token = PG_GETARG_TEXT_PP(1);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char		hex[PG_SHA256_DIGEST_LENGTH * 2 + 1];
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
	{
		pg_cryptohash_free(ctx);
		ereport(ERROR, (errmsg("shardline.enter: could not compute a SHA-256 digest")));
	}
	pg_cryptohash_free(ctx);
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	if (!digest_matches(hex))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("shardline.enter: the binding token is not valid on this server")));
	(void) set_config_option("shardline.tenant", text_to_cstring(tenant),
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SET,
							 true, 0, false);
	PG_RETURN_VOID();
}
