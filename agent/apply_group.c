/*
 * Row groups of the applier: values of several changes of one relation and statement shape,
 * copied and bounded, sent later as one multi-row INSERT, UPDATE or DELETE (see apply.c for when).
 */
#include "switchyard/apply_group.h"

#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET UINT64_C(1469598103934665603)
#define FNV_PRIME UINT64_C(1099511628211)

static uint64_t
key_hash_step(uint64_t h, const TupleValue *v)
{
	h = (h ^ (uint8_t) v->kind) * FNV_PRIME;
	for (uint32_t j = 0; v->data != NULL && j < v->length; j++)
		h = (h ^ (uint8_t) v->data[j]) * FNV_PRIME;
	/* a separator: ("ab", "c") and ("a", "bc") differ */
	return (h ^ 0xff) * FNV_PRIME;
}

uint64_t
apply_group_key_hash(const TupleValue *const *values, int n)
{
	uint64_t h = FNV_OFFSET;

	for (int i = 0; i < n; i++)
		h = key_hash_step(h, values[i]);
	return h;
}

uint64_t
apply_group_tuple_key(const ApplySqlTable *table, const TupleData *tuple)
{
	uint64_t h = FNV_OFFSET;

	for (uint16_t i = 0; i < table->ncols && i < tuple->ncols; i++)
		if (table->columns[i].is_key)
			h = key_hash_step(h, &tuple->values[i]);
	return h;
}

static size_t
plan_bytes(const ApplySqlPlan *plan)
{
	size_t bytes = 0;

	for (int i = 0; i < plan->nparams; i++)
		if (plan->params[i]->kind != TUPLE_VALUE_NULL)
			bytes += plan->params[i]->length + 1;
	return bytes;
}

bool
apply_group_has_key(const ApplyGroup *g, uint64_t key)
{
	for (int i = 0; i < g->rows; i++)
		if (g->keys[i] == key)
			return true;
	return false;
}

bool
apply_group_accepts(const ApplyGroup *g, const void *owner, const ApplySqlPlan *plan, uint64_t key)
{
	if (g->rows == 0 || g->owner != owner || g->kind != (char) plan->kind ||
		g->width != plan->nparams || g->rows >= APPLY_GROUP_ROWS ||
		memcmp(g->roles, plan->roles, g->ncols) != 0 ||
		g->len + plan_bytes(plan) > APPLY_GROUP_BYTES ||
		(size_t) (g->rows + 1) * (size_t) plan->nparams > APPLY_GROUP_MAX_PARAMS)
		return false;
	/* rows of one UPDATE or DELETE are found by their keys: one row twice needs two statements */
	return plan->kind == APPLY_SQL_INSERT || !apply_group_has_key(g, key);
}

static bool
reserve(ApplyGroup *g, size_t params, size_t bytes)
{
	void *p;

	if (params > g->param_cap)
	{
		size_t cap = params < 256 ? 256 : params;

		if ((p = realloc(g->offsets, cap * sizeof(*g->offsets))) == NULL)
			return false;
		g->offsets = p;
		if ((p = realloc(g->lengths, cap * sizeof(*g->lengths))) == NULL)
			return false;
		g->lengths = p;
		if ((p = realloc(g->formats, cap * sizeof(*g->formats))) == NULL)
			return false;
		g->formats = p;
		if ((p = realloc(g->values, cap * sizeof(*g->values))) == NULL)
			return false;
		g->values = p;
		g->param_cap = cap;
	}
	if (bytes > g->cap)
	{
		size_t cap = g->cap ? g->cap : 64 * 1024;

		while (cap < bytes)
			cap *= 2;
		if ((p = realloc(g->data, cap)) == NULL)
			return false;
		g->data = p;
		g->cap = cap;
	}
	return true;
}

/* Copies the plan's values to the end of the buffer, as the parameters from base on. */
static void
store_values(ApplyGroup *g, size_t base, const ApplySqlPlan *plan)
{
	for (int i = 0; i < plan->nparams; i++)
	{
		const TupleValue *v = plan->params[i];

		g->lengths[base + i] = (int) v->length;
		g->formats[base + i] = v->kind == TUPLE_VALUE_BINARY;
		g->binary |= (v->kind == TUPLE_VALUE_BINARY);
		if (v->kind == TUPLE_VALUE_NULL)
		{
			g->offsets[base + i] = SIZE_MAX;
			continue;
		}
		g->offsets[base + i] = g->len;
		memcpy(g->data + g->len, v->data, v->length);
		g->data[g->len + v->length] = '\0';
		g->len += v->length + 1;
	}
}

bool
apply_group_append(ApplyGroup *g, void *owner, uint16_t ncols, const ApplySqlPlan *plan,
				   uint64_t key, uint64_t lsn)
{
	size_t base;

	if (g->rows == 0)
	{
		if (ncols > g->roles_cap)
		{
			uint8_t *grown = realloc(g->roles, ncols);

			if (grown == NULL)
				return false;
			g->roles = grown;
			g->roles_cap = ncols;
		}
		memcpy(g->roles, plan->roles, ncols);
		g->owner = owner;
		g->kind = (char) plan->kind;
		g->ncols = ncols;
		g->width = plan->nparams;
		g->len = 0;
		g->binary = false;
		g->first_lsn = lsn;
	}
	base = (size_t) g->rows * (size_t) plan->nparams;
	if (!reserve(g, base + (size_t) plan->nparams, g->len + plan_bytes(plan)))
	{
		if (g->rows == 0)
			g->owner = NULL;
		return false;
	}
	store_values(g, base, plan);
	g->keys[g->rows++] = key;
	g->changes++;
	return true;
}

static bool
same_value(const ApplyGroup *g, size_t param, const TupleValue *v)
{
	if (g->offsets[param] == SIZE_MAX)
		return v->kind == TUPLE_VALUE_NULL;
	return v->kind != TUPLE_VALUE_NULL && g->formats[param] == (v->kind == TUPLE_VALUE_BINARY) &&
		(uint32_t) g->lengths[param] == v->length &&
		memcmp(g->data + g->offsets[param], v->data, v->length) == 0;
}

int
apply_group_find_row(const ApplyGroup *g, const ApplySqlPlan *plan, int nmatch, uint64_t key)
{
	int first = plan->nparams - nmatch;

	if (g->width != plan->nparams || nmatch <= 0 || first < 0)
		return -1;
	for (int row = 0; row < g->rows; row++)
	{
		size_t base = (size_t) row * (size_t) g->width;
		int i = first;

		if (g->keys[row] != key)
			continue;
		while (i < plan->nparams && same_value(g, base + (size_t) i, plan->params[i]))
			i++;
		if (i == plan->nparams)
			return row;
	}
	return -1;
}

bool
apply_group_replace(ApplyGroup *g, int row, const ApplySqlPlan *plan)
{
	size_t base = (size_t) row * (size_t) g->width;
	size_t bytes = plan_bytes(plan);

	/* the old values stay in the buffer unused until the group is sent */
	if (row < 0 || row >= g->rows || g->width != plan->nparams || g->len + bytes > APPLY_GROUP_BYTES ||
		!reserve(g, (size_t) g->rows * (size_t) g->width, g->len + bytes))
		return false;
	store_values(g, base, plan);
	g->changes++;
	return true;
}

const char *const *
apply_group_values(ApplyGroup *g)
{
	size_t n = (size_t) g->rows * (size_t) g->width;

	for (size_t i = 0; i < n; i++)
		g->values[i] = g->offsets[i] == SIZE_MAX ? NULL : g->data + g->offsets[i];
	return g->values;
}

void
apply_group_reset(ApplyGroup *g)
{
	g->owner = NULL;
	g->rows = 0;
	g->changes = 0;
	g->len = 0;
	g->binary = false;
}

void
apply_group_free(ApplyGroup *g)
{
	if (g == NULL)
		return;
	free(g->roles);
	free(g->data);
	free(g->offsets);
	free(g->lengths);
	free(g->formats);
	free(g->values);
	memset(g, 0, sizeof(*g));
}
