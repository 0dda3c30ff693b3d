/*-------------------------------------------------------------------------
 *
 * src/planner.c
 *	  The planner's estimate of a protected scan: costed with the
 *	  organizations the acting user holds the permission in now.
 *
 * A protected table's read policy is org_id = ANY (um_permitted_orgs(p)),
 * or um_has_permission(p, org_id), which the support function (support.c)
 * turns into the same index condition.  The array is computed when the
 * scan starts, so one plan serves every user.  But the btree cost assumes
 * 10 elements for any array that is not a constant (estimate_array_length)
 * and divides the index pages of the scan by those 10: for a user in one
 * large organization each of the 10 scans looks too small for parallel
 * workers (min_parallel_index_scan_size), so the protected query runs
 * serially where the same filter written as org_id IN (1, 500) runs in
 * parallel.  (PostgreSQL does estimate the rows of the ANY form from the
 * array's value; for the um_has_permission form it assumes a third of the
 * table.)
 *
 * This set_rel_pathlist hook costs such a table's scans again with the
 * array the acting user would get now: for each top-level restriction of
 * one of those two shapes (with constant arguments), a twin clause
 * org_id = ANY ('{...}') stands in while the table's row count and its
 * scan paths are estimated anew, exactly as the planner made them (a
 * sequential scan, a parallel one, create_index_paths, TID scans); then
 * every index clause built on a twin is given back its original clause, so
 * the plan evaluates um_permitted_orgs at execution as before.  Only the
 * costs and the row estimate come from the twin (which, being an ANY of a
 * constant, may also match an index support.c would not give the call, a
 * bitmap scan of a hash index say: still the original clause at run time,
 * and still rechecked); if any twin were left in
 * a path (a path of a kind this file does not know), the planner's own
 * paths are kept instead.
 *
 * A prepared statement's generic plan is costed for the user acting when
 * it was planned, as a custom plan is for its parameter values; its
 * answers stay right for every user.  Nobody acting, an empty array, an
 * unknown permission or a parameter in place of the constant: the
 * planner's own estimate stands.  um.planner_estimates = off turns this
 * off.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pathnodes.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/restrictinfo.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "um.h"

static set_rel_pathlist_hook_type prev_set_rel_pathlist = NULL;
static bool planner_estimates = true;

/* an estimate is being computed: the cache's own queries get none */
static bool estimating = false;

/* a restriction costed through a twin */
typedef struct Twin
{
	RestrictInfo *orig;
	RestrictInfo *twin;			/* org = ANY ('{...}') */
	Expr	   *index_clause;	/* what the original's index clause is */
} Twin;

/*
 * may the current role execute the function?  PostgreSQL checks EXECUTE
 * when the plan starts; an estimate made while planning must not answer
 * for a function the role may not call (um_permitted_orgs(user, p) says
 * where someone else holds a permission, and a row estimate would tell)
 */
static bool
may_execute(Oid funcid)
{
#if PG_VERSION_NUM >= 160000
	return object_aclcheck(ProcedureRelationId, funcid, GetUserId(), ACL_EXECUTE) == ACLCHECK_OK;
#else
	return pg_proc_aclcheck(funcid, GetUserId(), ACL_EXECUTE) == ACLCHECK_OK;
#endif
}

/* the constant argument of a call, or NULL */
static Const *
const_arg(List *args, int i, Oid type)
{
	Node	   *n = (Node *) list_nth(args, i);

	if (!IsA(n, Const) || ((Const *) n)->consttype != type || ((Const *) n)->constisnull)
		return NULL;
	return (Const *) n;
}

/*
 * orgs_const: the int8[] constant um_permitted_orgs([user,] perm) would be
 * now, or NULL when there is no useful estimate (nobody acting, no
 * organization, an unknown permission)
 */
static Const *
orgs_const(bool acting, Const *user, Const *perm)
{
	text	   *t = DatumGetTextPP(perm->constvalue);
	int64	   *ids;
	int			n;
	Datum	   *d;
	int			i;
	ArrayType  *arr;

	bool		known;

	estimating = true;
	PG_TRY();
	{
		known = um_evaluator_orgs_now(acting, user != NULL ? DatumGetInt64(user->constvalue) : 0,
									  VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &ids, &n);
	}
	PG_FINALLY();
	{
		estimating = false;
	}
	PG_END_TRY();
	if (!known || n == 0)
		return NULL;
	d = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(ids[i]);
	arr = construct_array(d, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	return makeConst(INT8ARRAYOID, -1, InvalidOid, -1, PointerGetDatum(arr), false, false);
}

static ScalarArrayOpExpr *
any_of(Oid opno, Node *org, Expr *array)
{
	ScalarArrayOpExpr *saop = makeNode(ScalarArrayOpExpr);

	saop->opno = opno;
	saop->opfuncid = get_opcode(opno);
	saop->useOr = true;
	saop->inputcollid = InvalidOid;
	saop->args = list_make2(copyObject(org), array);
	saop->location = -1;
	return saop;
}

/*
 * a copy of a restriction with another clause, its cached estimates
 * cleared.  security_level and leakproof stay the original's on purpose:
 * make_restrictinfo would call the twin leakproof, and the planner would
 * let it run before a policy of a lower level.
 */
static RestrictInfo *
with_clause(RestrictInfo *orig, Expr *clause)
{
	RestrictInfo *r = makeNode(RestrictInfo);

	memcpy(r, orig, sizeof(RestrictInfo));
	r->clause = clause;
	r->orclause = NULL;
	r->norm_selec = -1;
	r->outer_selec = -1;
	r->eval_cost.startup = -1;
	r->scansel_cache = NIL;
	r->left_relids = NULL;
	r->right_relids = NULL;
	r->parent_ec = NULL;
	r->left_ec = NULL;
	r->right_ec = NULL;
	r->left_em = NULL;
	r->right_em = NULL;
	r->mergeopfamilies = NIL;
	r->hashjoinoperator = InvalidOid;
	r->left_bucketsize = -1;
	r->right_bucketsize = -1;
	r->left_mcvfreq = -1;
	r->right_mcvfreq = -1;
	return r;
}

/*
 * twin_of: the twin of a restriction of one of our shapes, or false.
 *	org = ANY (um_permitted_orgs([user,] 'perm'))
 *	um_has_permission([user,] 'perm', org)   (organization level, no scope)
 */
static bool
twin_of(RestrictInfo *rinfo, Twin *out)
{
	Node	   *clause = (Node *) rinfo->clause;
	Oid			eq = lookup_type_cache(INT8OID, TYPECACHE_EQ_OPR)->eq_opr;

	if (IsA(clause, ScalarArrayOpExpr))
	{
		ScalarArrayOpExpr *saop = (ScalarArrayOpExpr *) clause;
		FuncExpr   *f;
		UmEvalFunction kind;
		Const	   *c;

		if (!saop->useOr || saop->opno != eq || list_length(saop->args) != 2 ||
			!IsA(lsecond(saop->args), FuncExpr))
			return false;
		f = (FuncExpr *) lsecond(saop->args);
		if (f->funcresulttype != INT8ARRAYOID)
			return false;
		kind = um_evaluator_function(f->funcid);
		if (kind == UM_EVAL_OTHER || !may_execute(f->funcid))
			return false;
		if (kind == UM_EVAL_PERMITTED_ORGS_ACTING && list_length(f->args) == 1)
			c = const_arg(f->args, 0, TEXTOID) ? orgs_const(true, NULL, const_arg(f->args, 0, TEXTOID)) : NULL;
		else if (kind == UM_EVAL_PERMITTED_ORGS_USER && list_length(f->args) == 2 &&
				 const_arg(f->args, 0, INT8OID) && const_arg(f->args, 1, TEXTOID))
			c = orgs_const(false, const_arg(f->args, 0, INT8OID), const_arg(f->args, 1, TEXTOID));
		else
			return false;
		if (c == NULL)
			return false;
		out->orig = rinfo;
		out->twin = with_clause(rinfo, (Expr *) any_of(saop->opno, linitial(saop->args), (Expr *) c));
		out->index_clause = (Expr *) saop;
		return true;
	}
	if (IsA(clause, FuncExpr) && ((FuncExpr *) clause)->funcresulttype == BOOLOID)
	{
		FuncExpr   *f = (FuncExpr *) clause;
		UmEvalFunction kind = um_evaluator_function(f->funcid);
		bool		acting;
		Const	   *user = NULL;
		Const	   *perm;
		Node	   *org;
		Const	   *c;
		Oid			argtypes[2];
		Oid			companion;
		List	   *cargs;

		if (kind == UM_EVAL_HAS_PERMISSION_ACTING && list_length(f->args) == 2)
		{
			acting = true;
			perm = const_arg(f->args, 0, TEXTOID);
			org = (Node *) lsecond(f->args);
		}
		else if (kind == UM_EVAL_HAS_PERMISSION_USER && list_length(f->args) == 3)
		{
			acting = false;
			user = const_arg(f->args, 0, INT8OID);
			perm = const_arg(f->args, 1, TEXTOID);
			org = (Node *) lthird(f->args);
			if (user == NULL)
				return false;
		}
		else
			return false;
		if (perm == NULL || exprType(org) != INT8OID)
			return false;
		/* the index condition support.c hands the planner for this call */
		argtypes[0] = acting ? TEXTOID : INT8OID;
		argtypes[1] = TEXTOID;
		companion = um_support_companion(f->funcid, "um_permitted_orgs", acting ? 1 : 2, argtypes);
		if (!OidIsValid(companion) || !may_execute(f->funcid) || !may_execute(companion))
			return false;
		c = orgs_const(acting, user, perm);
		if (c == NULL)
			return false;
		cargs = acting ? list_make1(copyObject(perm)) : list_make2(copyObject(user), copyObject(perm));
		out->orig = rinfo;
		out->twin = with_clause(rinfo, (Expr *) any_of(eq, org, (Expr *) c));
		out->index_clause = (Expr *) any_of(eq, org,
											(Expr *) makeFuncExpr(companion, INT8ARRAYOID, cargs, InvalidOid,
																  InvalidOid, COERCE_EXPLICIT_CALL));
		return true;
	}
	return false;
}

static Twin *
find_twin(Twin *twins, int n, const RestrictInfo *rinfo)
{
	int			i;

	for (i = 0; i < n; i++)
		if (twins[i].twin == rinfo)
			return &twins[i];
	return NULL;
}

/* replace twins by their originals in a list of restrictions */
static List *
map_list(List *list, Twin *twins, int n, bool to_twin)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, list)
	{
		RestrictInfo *r = lfirst_node(RestrictInfo, lc);
		int			i;

		for (i = 0; i < n; i++)
		{
			if (to_twin && r == twins[i].orig)
				r = twins[i].twin;
			else if (!to_twin && r == twins[i].twin)
				r = twins[i].orig;
		}
		result = lappend(result, r);
	}
	return result;
}

static bool mentions_twin(List *rinfos, Twin *twins, int n);

/*
 * give_back: the index clauses built on twins get their original clause
 * (and, for a um_has_permission call, the index condition support.c
 * makes); false when a path of an unknown kind could hold a twin
 */
static bool
give_back(PlannerInfo *root, Path *path, Twin *twins, int n)
{
	ListCell   *lc;

	switch (nodeTag(path))
	{
		case T_Path:
			return path->pathtype == T_SeqScan;
		case T_IndexPath:
			{
				IndexPath  *ip = (IndexPath *) path;
				List	   *clauses = NIL;

				foreach(lc, ip->indexclauses)
				{
					IndexClause *ic = lfirst_node(IndexClause, lc);
					Twin	   *t = find_twin(twins, n, ic->rinfo);

					if (t != NULL)
					{
						IndexClause *back = makeNode(IndexClause);

						back->rinfo = t->orig;
						back->indexquals = list_make1(t->index_clause == t->orig->clause ? t->orig
													  : make_simple_restrictinfo(root, t->index_clause));
						back->lossy = false;
						back->indexcol = ic->indexcol;
						back->indexcols = ic->indexcols;
						ic = back;
					}
					else if (mentions_twin(ic->indexquals, twins, n))
						return false;
					clauses = lappend(clauses, ic);
				}
				ip->indexclauses = clauses;
				return !mentions_twin(ip->indexorderbys, twins, n);
			}
		case T_BitmapHeapPath:
			return give_back(root, ((BitmapHeapPath *) path)->bitmapqual, twins, n);
		case T_BitmapAndPath:
			foreach(lc, ((BitmapAndPath *) path)->bitmapquals)
			{
				if (!give_back(root, (Path *) lfirst(lc), twins, n))
					return false;
			}
			return true;
		case T_BitmapOrPath:
			foreach(lc, ((BitmapOrPath *) path)->bitmapquals)
			{
				if (!give_back(root, (Path *) lfirst(lc), twins, n))
					return false;
			}
			return true;
		case T_TidPath:
			return !mentions_twin(((TidPath *) path)->tidquals, twins, n);
		case T_TidRangePath:
			return !mentions_twin(((TidRangePath *) path)->tidrangequals, twins, n);
		default:
			return false;
	}
}

static bool
mentions_twin(List *rinfos, Twin *twins, int n)
{
	ListCell   *lc;

	foreach(lc, rinfos)
	{
		if (IsA(lfirst(lc), RestrictInfo) && find_twin(twins, n, (RestrictInfo *) lfirst(lc)) != NULL)
			return true;
	}
	return false;
}

/* is this one of the paths set_plain_rel_pathlist makes? */
static bool
plain_path(Path *path)
{
	switch (path->pathtype)
	{
		case T_SeqScan:
		case T_IndexScan:
		case T_IndexOnlyScan:
		case T_BitmapHeapScan:
		case T_TidScan:
		case T_TidRangeScan:
			return true;
		default:
			return false;
	}
}

static void
um_set_rel_pathlist(PlannerInfo *root, RelOptInfo *rel, Index rti, RangeTblEntry *rte)
{
	Twin	   *twins;
	int			ntwins = 0;
	List	   *saved_restrict;
	List	   *saved_index_restrict = NIL;
	List	   *saved_paths;
	List	   *saved_partial;
	List	   *others = NIL;
	List	   *others_partial = NIL;
	List	   *selectivity_list;
	double		saved_rows;
	bool		ok = true;
	ListCell   *lc;

	if (prev_set_rel_pathlist)
		prev_set_rel_pathlist(root, rel, rti, rte);
	if (!planner_estimates || estimating || rel->reloptkind != RELOPT_BASEREL || rte->rtekind != RTE_RELATION ||
		rte->inh || rte->tablesample != NULL || IS_DUMMY_REL(rel) || rel->baserestrictinfo == NIL ||
		(rte->relkind != RELKIND_RELATION && rte->relkind != RELKIND_MATVIEW))
		return;

	/* WHERE CURRENT OF: the planner makes a TID scan alone (PG 18 returns early) */
	foreach(lc, rel->baserestrictinfo)
	{
		if (IsA(lfirst_node(RestrictInfo, lc)->clause, CurrentOfExpr))
			return;
	}
	twins = palloc(sizeof(Twin) * list_length(rel->baserestrictinfo));
	foreach(lc, rel->baserestrictinfo)
	{
		if (twin_of(lfirst_node(RestrictInfo, lc), &twins[ntwins]))
			ntwins++;
	}
	if (ntwins == 0)
		return;

	/* estimate with the twins standing in */
	saved_restrict = rel->baserestrictinfo;
	saved_rows = rel->rows;
	saved_paths = rel->pathlist;
	saved_partial = rel->partial_pathlist;
	rel->baserestrictinfo = map_list(saved_restrict, twins, ntwins, true);
	foreach(lc, rel->indexlist)
	{
		IndexOptInfo *index = (IndexOptInfo *) lfirst(lc);

		saved_index_restrict = lappend(saved_index_restrict, index->indrestrictinfo);
		index->indrestrictinfo = map_list(index->indrestrictinfo, twins, ntwins, true);
	}
	selectivity_list = rel->baserestrictinfo;
	rel->rows = clamp_row_est(rel->tuples * clauselist_selectivity(root, selectivity_list, 0, JOIN_INNER, NULL));
	/* paths another extension's hook added stay */
	foreach(lc, saved_paths)
	{
		if (!plain_path((Path *) lfirst(lc)))
			others = lappend(others, lfirst(lc));
	}
	foreach(lc, saved_partial)
	{
		if (!plain_path((Path *) lfirst(lc)))
			others_partial = lappend(others_partial, lfirst(lc));
	}
	rel->pathlist = NIL;
	rel->partial_pathlist = NIL;

	/* the paths set_plain_rel_pathlist makes */
	add_path(rel, create_seqscan_path(root, rel, rel->lateral_relids, 0));
	if (rel->consider_parallel && rel->lateral_relids == NULL)
	{
		int			workers = compute_parallel_worker(rel, rel->pages, -1, max_parallel_workers_per_gather);

		if (workers > 0)
			add_partial_path(rel, create_seqscan_path(root, rel, NULL, workers));
	}
	create_index_paths(root, rel);
	create_tidscan_paths(root, rel);

	/* the originals back, in the rel and in every path */
	rel->baserestrictinfo = saved_restrict;
	foreach(lc, rel->indexlist)
	{
		IndexOptInfo *index = (IndexOptInfo *) lfirst(lc);

		index->indrestrictinfo = (List *) linitial(saved_index_restrict);
		saved_index_restrict = list_delete_first(saved_index_restrict);
	}
	foreach(lc, rel->pathlist)
	{
		ok = ok && give_back(root, (Path *) lfirst(lc), twins, ntwins);
	}
	foreach(lc, rel->partial_pathlist)
	{
		ok = ok && give_back(root, (Path *) lfirst(lc), twins, ntwins);
	}
	if (!ok)
	{
		rel->rows = saved_rows;
		rel->pathlist = saved_paths;
		rel->partial_pathlist = saved_partial;
		return;
	}
	foreach(lc, others)
	{
		add_path(rel, (Path *) lfirst(lc));
	}
	foreach(lc, others_partial)
	{
		add_partial_path(rel, (Path *) lfirst(lc));
	}
}

void
um_planner_init(void)
{
	DefineCustomBoolVariable("um.planner_estimates",
							 "Costs scans under um's policies with the acting user's organizations.",
							 "The plan still computes the organizations when it runs; only the "
							 "estimates change.",
							 &planner_estimates, true, PGC_USERSET, 0, NULL, NULL, NULL);
	prev_set_rel_pathlist = set_rel_pathlist_hook;
	set_rel_pathlist_hook = um_set_rel_pathlist;
}
