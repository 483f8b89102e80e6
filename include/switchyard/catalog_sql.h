/*
 * SQL fragments for catalog queries that the applier and the parity share.
 */
#ifndef SWITCHYARD_CATALOG_SQL_H
#define SWITCHYARD_CATALOG_SQL_H

/*
 * The name to cast a parameter or a value to a type of OID `oid` (an SQL expression): the
 * schema-qualified pg_type name, which carries no length or precision. format_type(oid, NULL)
 * spells bpchar "character" and bit "bit", which SQL reads as char(1) and bit(1): an explicit
 * cast to them cut every char(n) value to its first character without an error (and failed
 * on bit(n)). A qualified name such as pg_catalog.bpchar or pg_catalog._bpchar takes any length.
 */
#define CATALOG_CAST_TYPE_NAME_SQL(oid) \
	"(SELECT pg_catalog.format('%I.%I', cast_ns.nspname, cast_ty.typname)" \
	" FROM pg_catalog.pg_type cast_ty JOIN pg_catalog.pg_namespace cast_ns" \
	" ON cast_ns.oid = cast_ty.typnamespace WHERE cast_ty.oid = " oid ")"

#endif
