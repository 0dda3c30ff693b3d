/*-------------------------------------------------------------------------
 *
 * src/support.c
 *	  The planner support function of um_has_permission(): it lets a
 *	  per-row check drive an index scan.
 *
 * A policy written the natural way,
 *		USING (um_has_permission('invoice:read', org_id))
 * would otherwise make the planner test every row of the table.  When the
 * organization argument is an indexed column and the other arguments do not
 * depend on the row, this function hands the planner an equivalent index
 * condition,
 *		org_id = ANY (um_permitted_orgs('invoice:read'))
 * whose right side is STABLE: the executor evaluates it once per scan (a
 * runtime key), so a cached or prepared plan stays right for whichever user
 * is acting when it runs.  For an organization-level check the condition is
 * exact and replaces the per-row call; a scope check's condition is lossy,
 * so the original call still runs on each row the index returns.  The
 * same holds for um_has_permission(user, permission, org) with
 * um_permitted_orgs(user, permission), and for the scope variants when the
 * organization does not depend on the row: scope_id = ANY
 * (um_permitted_scopes(permission, org)).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/stratnum.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pathnodes.h"
#include "nodes/supportnodes.h"
#include "optimizer/optimizer.h"
#include "parser/parse_func.h"
#include "utils/lsyscache.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_has_permission_support);

/* the companion um_<name>(argtypes...) in the schema of the checked function */
Oid
um_support_companion(Oid funcid, const char *name, int nargs, const Oid *argtypes)
{
	char	   *nsp = get_namespace_name(get_func_namespace(funcid));

	if (nsp == NULL)
		return InvalidOid;
	return LookupFuncName(list_make2(makeString(nsp), makeString(pstrdup(name))),
						  nargs, argtypes, true);
}

/* may this argument be computed once per scan? */
static bool
row_independent(Node *arg)
{
	return !contain_var_clause(arg) && !contain_volatile_functions(arg);
}

/*
 * index_condition: the clause "indexed_arg = ANY (array_expr)" for the index
 * column's equality operator, or NULL when the index cannot take it.
 */
static Node *
index_condition(SupportRequestIndexCondition *req, Node *indexed_arg, Expr *array_expr)
{
	Oid			eqop;
	ScalarArrayOpExpr *saop;

	if (!req->index->amsearcharray || exprType(indexed_arg) != INT8OID)
		return NULL;
	eqop = get_opfamily_member(req->opfamily, INT8OID, INT8OID, BTEqualStrategyNumber);
	if (!OidIsValid(eqop))
		return NULL;
	saop = makeNode(ScalarArrayOpExpr);
	saop->opno = eqop;
	saop->opfuncid = get_opcode(eqop);
	saop->useOr = true;
	saop->inputcollid = InvalidOid;
	saop->args = list_make2(copyObject(indexed_arg), array_expr);
	saop->location = -1;
	return (Node *) saop;
}

/*
 * um_has_permission_support(internal): answers SupportRequestIndexCondition.
 */
Datum
um_has_permission_support(PG_FUNCTION_ARGS)
{
	Node	   *rawreq = (Node *) PG_GETARG_POINTER(0);
	SupportRequestIndexCondition *req;
	FuncExpr   *call;
	List	   *args;
	int			nargs;
	Oid			first;
	bool		acting;			/* (permission, org[, scope]) rather than (user, permission, org[, scope]) */
	int			perm_arg,
				org_arg,
				scope_arg;
	const char *companion_name;
	List	   *companion_args = NIL;
	Oid			companion_types[3];
	Oid			companion_oid;
	Node	   *clause;
	int			i;

	if (!IsA(rawreq, SupportRequestIndexCondition))
		PG_RETURN_POINTER(NULL);
	req = (SupportRequestIndexCondition *) rawreq;
	if (!IsA(req->node, FuncExpr))
		PG_RETURN_POINTER(NULL);
	call = (FuncExpr *) req->node;
	args = call->args;
	nargs = list_length(args);
	if (nargs < 2 || nargs > 4)
		PG_RETURN_POINTER(NULL);
	first = exprType((Node *) linitial(args));
	acting = (first == TEXTOID);
	perm_arg = acting ? 0 : 1;
	org_arg = perm_arg + 1;
	scope_arg = (nargs == (acting ? 3 : 4)) ? org_arg + 1 : -1;

	/*
	 * An indexed organization without a scope argument: org_id = ANY
	 * (um_permitted_orgs([user,] permission)).  An indexed scope node:
	 * scope_id = ANY (um_permitted_scopes([user,] permission, org)).  (An
	 * indexed organization in a scope check gets nothing: a grant on a node
	 * does not show at the organization level.)  The companion takes the
	 * arguments before the indexed one, which must not depend on the row.
	 */
	if (req->indexarg == org_arg && scope_arg < 0)
		companion_name = "um_permitted_orgs";
	else if (scope_arg >= 0 && req->indexarg == scope_arg)
		companion_name = "um_permitted_scopes";
	else
		PG_RETURN_POINTER(NULL);
	for (i = 0; i < req->indexarg; i++)
	{
		Node	   *arg = (Node *) list_nth(args, i);

		if (!row_independent(arg))
			PG_RETURN_POINTER(NULL);
		companion_args = lappend(companion_args, copyObject(arg));
		companion_types[i] = exprType(arg);
	}
	companion_oid = um_support_companion(req->funcid, companion_name, req->indexarg, companion_types);

	if (!OidIsValid(companion_oid))
		PG_RETURN_POINTER(NULL);
	clause = index_condition(req, (Node *) list_nth(args, req->indexarg),
							 (Expr *) makeFuncExpr(companion_oid, INT8ARRAYOID, companion_args,
												   InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL));
	if (clause == NULL)
		PG_RETURN_POINTER(NULL);
	/*
	 * For an organization-level check the condition is exact: the check is
	 * true for a row exactly when its organization is one where the user
	 * holds the permission organization-wide, which is what the companion
	 * lists (both answer from the same cache, NULL and an absent user
	 * alike), so the per-row call can go.  The list is taken once, at the
	 * start of the scan, like the statement's snapshot.  A scope check
	 * stays lossy: the per-row call rechecks what the index returns.
	 */
	req->lossy = (scope_arg >= 0);
	PG_RETURN_POINTER(list_make1(clause));
}
