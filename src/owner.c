/*-------------------------------------------------------------------------
 *
 * src/owner.c
 *	  Who um's owner is, and running SPI as a chosen role.
 *
 * um's own privileged work (the cache loader's queries, table protection,
 * user references) runs as the extension's owner; the hot reads of um's
 * tables (the cache's user and organization loads, um_begin's session
 * lookup) need no role at all: they are direct index scans (scan.c);
 * reading an application table runs as that table's owner, inside a security-restricted operation, so the
 * application's code (casts, operators, policies) never gets um's rights.
 * Both go through um_run_as_begin/end: the role, a search_path pinned to
 * pg_catalog, forced row-level security ignored (um decides what is read),
 * and an SPI connection.  An error unwinds all of it with the transaction.
 * Every change of user id in um's C is made here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"

#include "um.h"

/*
 * um_owner: the extension's owner, the role um's own code runs as.  It is
 * the role that ran CREATE EXTENSION (a superuser: um is not trusted) and
 * owns every object of um; REASSIGN OWNED moves both together.  The SQL
 * side asks the same question of pg_extension.extowner
 * (um_internal.role_administers_um, the policies of um's own tables).
 */
Oid
um_owner(void)
{
	Oid			extoid = get_extension_oid("um", true);
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	if (OidIsValid(extoid))
	{
		rel = table_open(ExtensionRelationId, AccessShareLock);
		ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(extoid));
		scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
		tup = systable_getnext(scan);
		if (HeapTupleIsValid(tup))
			owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
	}
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"um\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION um.")));
	return owner;
}

/* become role: restricted for an application table's owner */
static void
set_role(UmRunAs *ra, Oid role, bool restricted)
{
	SetUserIdAndSecContext(role, ra->save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_NOFORCE_RLS | (restricted ? SECURITY_RESTRICTED_OPERATION : 0));
}

/* um_run_as_begin: SPI as role, with search_path = pg_catalog, pg_temp */
void
um_run_as_begin(UmRunAs *ra, Oid role, bool restricted)
{
	GetUserIdAndSecContext(&ra->save_userid, &ra->save_sec_context);
	set_role(ra, role, restricted);
	ra->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/* um_run_as_switch: go on in the same SPI connection as another role */
void
um_run_as_switch(UmRunAs *ra, Oid role, bool restricted)
{
	set_role(ra, role, restricted);
}

/* um_run_as_end: close SPI, restore the settings and the caller's role */
void
um_run_as_end(UmRunAs *ra)
{
	SPI_finish();
	AtEOXact_GUC(true, ra->save_nestlevel);
	SetUserIdAndSecContext(ra->save_userid, ra->save_sec_context);
}
